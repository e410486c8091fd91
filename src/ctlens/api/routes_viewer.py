"""The analysis overlays as NIfTI for the web viewer, on exactly the grid and affine of ``volume.nii.gz``.

``GET /api/studies/{id}/overlays/heatmap.nii.gz`` (float32, 0..1) and ``.../overlays/labels.nii.gz`` (uint8:
lungs 1 / 2, candidates ``10 + k``; see :mod:`ctlens.api.overlays`) are written once per content by the same
writer as the volume (:func:`ctlens.io.save` of the study's volume with the overlay array), so the three files
share shape, affine and orientation voxel for voxel. Ownership, readiness and caching are those of the volume
route: another key's study is 404, a study still being analysed is 409.

Example:
    >>> sorted(r.path for r in router.routes)
    ['/api/studies/{study_id}/overlays/heatmap.nii.gz', '/api/studies/{study_id}/overlays/labels.nii.gz']
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from ctlens.api.artifacts import Artifacts
from ctlens.api.overlays import heatmap_volume, label_volume
from ctlens.api.routes_studies import ERRORS, PROBLEM, _export
from ctlens.api.security import Caller, require_key
from ctlens.core.errors import ServiceError

router = APIRouter()
NIFTI = {200: {"content": {"application/gzip": {}}, "description": "NIfTI-1, gzip"}, 409: PROBLEM} | ERRORS


def _write_heatmap(art: Artifacts, path: Path) -> None:
    from ctlens.io import save

    if art.heatmap is None:
        raise ServiceError("the study has no heatmap (the analysis made none)", status=404)
    save(art.volume.with_array(heatmap_volume(art.heatmap), modality="HEATMAP"), path)


def _write_labels(art: Artifacts, path: Path) -> None:
    from ctlens.io import save

    findings = art.result.get("findings") if isinstance(art.result.get("findings"), dict) else {}
    labels = label_volume(art.volume.shape, lungs=art.labels, roi=art.roi, candidates=findings.get("candidates") or [])
    save(art.volume.with_array(labels, modality="SEG"), path)


@router.get(
    "/api/studies/{study_id}/overlays/heatmap.nii.gz",
    response_class=FileResponse,
    responses=NIFTI,
    summary="The analysis heatmap as NIfTI (float32 0..1, the volume's grid); 404 when there is none",
)
def heatmap_nifti(study_id: str, request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx
    return _export(ctx, caller, study_id, "heatmap.nii.gz", _write_heatmap, "application/gzip", ".heatmap.nii.gz")


@router.get(
    "/api/studies/{study_id}/overlays/labels.nii.gz",
    response_class=FileResponse,
    responses=NIFTI,
    summary="Lungs (1 right, 2 left; 1 for a mask without sides) and candidate k's region (10+k) as uint8 NIfTI",
)
def labels_nifti(study_id: str, request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx
    return _export(ctx, caller, study_id, "labels.nii.gz", _write_labels, "application/gzip", ".labels.nii.gz")
