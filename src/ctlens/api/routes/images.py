"""Image route: ``POST /process-image``, the 2-D ROI and heatmap of one PNG/JPEG (nothing is stored).

Example:
    >>> [r.path for r in router.routes]
    ['/process-image']
"""

from __future__ import annotations

from fastapi import APIRouter, File, UploadFile

from ctlens.api.deps import Caller, Ctx
from ctlens.api.images import process_image as analyse_image
from ctlens.api.problems import ERRORS, PROBLEM
from ctlens.api.schemas import ProcessedImage

router = APIRouter()


@router.post(
    "/process-image",
    response_model=ProcessedImage,
    responses={413: PROBLEM, 415: PROBLEM, 503: PROBLEM} | ERRORS,
    summary="2-D ROI and heatmap of one PNG/JPEG image (nothing is stored)",
)
async def process_image(ctx: Ctx, caller: Caller, file: UploadFile = File(...)):
    return ProcessedImage(**await analyse_image(ctx, caller.id, file))
