"""Viewer routes: the analysis overlays as NIfTI, on exactly the grid and affine of ``volume.nii.gz``.

``GET /api/studies/{id}/overlays/heatmap.nii.gz`` (float32, 0..1) and ``.../overlays/labels.nii.gz`` (uint8:
lungs 1 / 2, candidates ``10 + k``; see :mod:`ctlens.api.overlays`) are written once per content by the same
writer as the volume (:func:`ctlens.io.save` of the study's volume with the overlay array,
:data:`ctlens.api.exports.EXPORTS`), so the three files share shape, affine and orientation voxel for voxel.
Ownership, readiness and caching are those of the volume route: another key's study is 404, a study still being
analysed is 409.

Example:
    >>> sorted(r.path for r in router.routes)
    ['/api/studies/{study_id}/overlays/heatmap.nii.gz', '/api/studies/{study_id}/overlays/labels.nii.gz']
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ctlens.api.deps import Caller, Ctx, ReadyStudy
from ctlens.api.exports import export_file
from ctlens.api.problems import ERRORS, PROBLEM

router = APIRouter()
NIFTI = {200: {"content": {"application/gzip": {}}, "description": "NIfTI-1, gzip"}, 409: PROBLEM} | ERRORS


@router.get(
    "/api/studies/{study_id}/overlays/heatmap.nii.gz",
    response_class=FileResponse,
    responses=NIFTI,
    summary="The analysis heatmap as NIfTI (float32 0..1, the volume's grid); 404 when there is none",
)
def heatmap_nifti(study_id: str, art: ReadyStudy, ctx: Ctx, caller: Caller):
    return export_file(ctx, caller.id, study_id, art, "heatmap.nii.gz")


@router.get(
    "/api/studies/{study_id}/overlays/labels.nii.gz",
    response_class=FileResponse,
    responses=NIFTI,
    summary="Lungs (1 right, 2 left; 1 for a mask without sides) and candidate k's region (10+k) as uint8 NIfTI",
)
def labels_nifti(study_id: str, art: ReadyStudy, ctx: Ctx, caller: Caller):
    return export_file(ctx, caller.id, study_id, art, "labels.nii.gz")
