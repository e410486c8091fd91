"""Turn a staged upload into stored artifacts: load, de-identify, analyse, save (runs in a request or a job).

Example:
    >>> sorted(series_rows([]))
    []
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctlens.api import services
from ctlens.api.artifacts import write_artifacts
from ctlens.api.uploads import IMAGE_KINDS, StagedUpload
from ctlens.core.errors import CTLensError, ServiceError
from ctlens.core.volume import Volume

logger = logging.getLogger("ctlens.api")

Progress = Callable[[float, str], None]


def series_rows(series: list[Any]) -> list[dict[str, Any]]:
    """The series table (no identifiers: description, modality, kernel, orientation, size)."""
    return [
        {
            "index": s.index,
            "description": s.description,
            "modality": s.modality,
            "kernel": s.kernel,
            "orientation": s.orientation,
            "slices": s.n_slices,
            "matrix": [s.rows, s.columns],
        }
        for s in series
    ]


def _load(staged: StagedUpload, series: str | None, max_image_pixels: int) -> tuple[Volume, list[dict]]:
    from PIL import Image

    from ctlens.io import list_series, load

    if staged.kind == "dicom":
        found = series_rows(list_series(staged.input_path))
        selector: int | str | None = int(series) if series and series.isdigit() else series
        return load(staged.input_path, series=selector, uneven="resample"), found
    if staged.kind in IMAGE_KINDS:
        Image.MAX_IMAGE_PIXELS = max_image_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                return load(staged.input_path), []
            except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
                raise ServiceError(f"image has too many pixels ({exc})", status=413) from None
    return load(staged.input_path), []


FROM_SETTINGS: Any = object()
"""``process_upload(clip_checkpoint=FROM_SETTINGS)``: read ``CTLENS_CLIP_CHECKPOINT`` from the environment."""


def _clip_checkpoint(value: Any) -> Path | None:
    if value is FROM_SETTINGS:
        from ctlens.core.settings import get_settings

        return get_settings().clip_checkpoint
    return None if value is None else Path(value)


def process_upload(
    staged: StagedUpload,
    folder: Path,
    *,
    series: str | None,
    max_image_pixels: int,
    progress: Progress | None = None,
    clip_checkpoint: Path | None = FROM_SETTINGS,
) -> dict[str, Any]:
    """Load the staged input, analyse it, write the artifacts into ``folder``; return the stored result.

    With a CLIP checkpoint (``clip_checkpoint``, by default the ``clip_checkpoint`` setting) a 3-D CT also gets
    ``result["zero_shot"]``: finding probabilities, or a ``warning`` when the model could not run.
    """
    from ctlens.io.deid import deidentify_meta

    report = progress or (lambda fraction, message: None)
    t0 = time.perf_counter()
    report(0.05, "reading")
    try:
        volume, found = _load(staged, series, max_image_pixels)
    except ServiceError:
        raise
    except CTLensError as exc:
        # The reason, without the staging path (it means nothing to the caller).
        raise ServiceError(exc.reason, status=422, hint=exc.hint) from None
    volume.meta = deidentify_meta(volume.meta)
    t_load = time.perf_counter() - t0
    report(0.35, "analysing")
    analysis: dict[str, Any] = {"status": "done", "reason": ""}
    findings, heat, roi = None, None, None
    try:
        if staged.kind in IMAGE_KINDS:
            findings, heat, roi = services.analyze_image(staged.input_path, volume.shape)
        else:
            findings, heat, roi = services.analyze_volume(volume)
    except ServiceError as exc:
        analysis = {"status": "unavailable", "reason": exc.reason}
    except CTLensError as exc:
        analysis = {"status": "failed", "reason": exc.reason}
    except Exception as exc:  # the analysis must not take the upload down with it
        logger.exception("analysis failed for content %s", staged.sha256[:12])
        analysis = {"status": "failed", "reason": f"{type(exc).__name__} during analysis"}
    t_analysis = time.perf_counter() - t0 - t_load
    checkpoint = _clip_checkpoint(clip_checkpoint)
    zero_shot = None
    if checkpoint is not None and staged.kind not in IMAGE_KINDS and volume.modality == "CT" and volume.shape[0] > 1:
        report(0.8, "zero-shot findings")
        zero_shot = services.zero_shot_findings(volume, checkpoint)
    t_zero_shot = time.perf_counter() - t0 - t_load - t_analysis
    report(0.9, "saving")
    result = {
        "kind": staged.kind,
        "files": staged.n_files,
        "bytes": staged.nbytes,
        "series": found,
        "shape": list(volume.shape),
        "spacing": list(volume.spacing),
        "modality": volume.modality,
        "facts": {k: v for k, v in volume.meta.items() if isinstance(v, str | int | float | bool)},
        "analysis": analysis,
        "findings": findings,
        "has_heatmap": heat is not None,
        "has_roi": roi is not None,
        "timings_s": {"load": round(t_load, 3), "analysis": round(t_analysis, 3)},
    }
    if zero_shot is not None:
        result["zero_shot"] = zero_shot
        result["timings_s"]["zero_shot"] = round(t_zero_shot, 3)
    write_artifacts(folder, volume, result, heat, roi)
    report(1.0, "done")
    logger.info("content %s analysed: %s voxels in %.2f s", staged.sha256[:12], volume.shape, time.perf_counter() - t0)
    return result
