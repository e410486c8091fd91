"""Export routes: a study's slices as PNG (windowed, with overlays), its volume as NIfTI and as ``.ctz``.

Example:
    >>> sorted(r.path.rsplit("/", 1)[-1] for r in router.routes)
    ['compressed.ctz', 'volume.nii.gz', '{k}.png']
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from ctlens.api.deps import Caller, Ctx, OwnedStudy, ReadyStudy
from ctlens.api.exports import export_file
from ctlens.api.problems import ERRORS, PROBLEM
from ctlens.api.slice_png import OVERLAYS, WINDOW_NAMES, study_png

router = APIRouter()


@router.get(
    "/api/studies/{study_id}/slices/{k}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the slice as PNG"}, 409: PROBLEM} | ERRORS,
    summary="One slice as PNG, windowed, optionally with the heatmap / ROI overlay",
)
async def slice_png(
    study_id: str,
    k: int,
    study: OwnedStudy,
    ctx: Ctx,
    caller: Caller,
    window: str = Query("auto", description=f"one of {', '.join(WINDOW_NAMES)}"),
    overlay: str = Query("none", description=f"one of {', '.join(OVERLAYS)}"),
):
    png = await study_png(ctx, caller.id, study, k, window, overlay)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/api/studies/{study_id}/volume.nii.gz",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}}, 409: PROBLEM} | ERRORS,
    summary="The de-identified volume as NIfTI",
)
def volume_nifti(study_id: str, art: ReadyStudy, ctx: Ctx, caller: Caller):
    return export_file(ctx, caller.id, study_id, art, "volume.nii.gz")


@router.get(
    "/api/studies/{study_id}/compressed.ctz",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 409: PROBLEM, 503: PROBLEM} | ERRORS,
    summary="The volume in ctlens's lossless .ctz container",
)
def volume_ctz(study_id: str, art: ReadyStudy, ctx: Ctx, caller: Caller):
    return export_file(ctx, caller.id, study_id, art, "compressed.ctz")
