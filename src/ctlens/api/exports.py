"""A study's stored artifacts as the routes serve them: files made on demand (:data:`EXPORTS`).

(Slice PNGs: :mod:`ctlens.api.slice_png`.) A file (the NIfTI volume, the ``.ctz`` container, the viewer's overlay
NIfTIs, see :mod:`ctlens.api.overlays`) is written once per content into its folder under a temporary name and
renamed, so a reader never sees half of it; every download is audited.

Example:
    >>> sorted(EXPORTS)
    ['compressed.ctz', 'heatmap.nii.gz', 'labels.nii.gz', 'volume.nii.gz']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi.responses import FileResponse

from ctlens.api import services
from ctlens.api.artifacts import Artifacts
from ctlens.api.overlays import heatmap_volume, label_volume
from ctlens.api.store import new_id
from ctlens.core.errors import ServiceError

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext


def _write_volume(art: Artifacts, path: Path) -> None:
    from ctlens.io import save

    save(art.volume, path)


def _write_ctz(art: Artifacts, path: Path) -> None:
    services.save_ctz(art.volume, path)


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


@dataclass(frozen=True)
class Export:
    """How one file is made from a study's artifacts, and how it is served (media type, download name suffix).

    ``write`` may raise a :class:`ServiceError` (say 404: nothing to export) before it writes anything.
    """

    write: Callable[[Artifacts, Path], None]
    media_type: str
    suffix: str


EXPORTS = {
    "volume.nii.gz": Export(_write_volume, "application/gzip", ".nii.gz"),
    "compressed.ctz": Export(_write_ctz, "application/octet-stream", ".ctz"),
    "heatmap.nii.gz": Export(_write_heatmap, "application/gzip", ".heatmap.nii.gz"),
    "labels.nii.gz": Export(_write_labels, "application/gzip", ".labels.nii.gz"),
}


def export_file(ctx: ServiceContext, owner: str, study_id: str, art: Artifacts, name: str) -> FileResponse:
    """The ready study's file ``name`` (one of :data:`EXPORTS`), made on first use, audited, as a download."""
    export = EXPORTS[name]
    path = art.folder / name
    if not path.exists():
        tmp = art.folder / f".{new_id('t')}.{name}"
        try:
            export.write(art, tmp)
            tmp.rename(path)
        finally:
            tmp.unlink(missing_ok=True)
    ctx.store.audit(owner, "export", study_id, name)
    return FileResponse(path, media_type=export.media_type, filename=f"{study_id}{export.suffix}")
