"""Turn a staged upload into stored artifacts: load, analyse, save, remember (runs in a request or a job).

:func:`process_upload` does the work with explicit settings; :func:`analyse_now` is what the service runs: it
takes the settings from the service context, discards the staged files as soon as they are read (the raw upload
may carry PHI in its headers; also on every error) and remembers the result.
What is stored and answered holds no free text from the headers: the reader's meta is de-identified at the source
(:func:`ctlens.io.uid_hash.deidentify_meta`), the series table shows cleaned descriptors
(:func:`ctlens.io.clean_descriptor.clean_descriptor`) and error messages naming series have their descriptions
cleaned too.
Zero-shot findings (when a CLIP checkpoint is configured) are decided in one place, :func:`zero_shot_is_current`:
a fresh upload gets them from :func:`process_upload`, a cache hit through :func:`refresh_zero_shot`, which scores
the stored volume with the configured checkpoint when the stored scores are missing or came from another one.
User classifiers (setting ``user_models_dir``) run after the analysis (:func:`user_model_entries`); their outputs
are ``result["user_models"]``, each labelled "model output, not a diagnosis"; a broken model is a warning there.
A cache hit brings them up to date with the folder's models through :func:`refresh_user_models`.

Example:
    >>> sorted(series_rows([]))
    []
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctlens.api import services
from ctlens.api.artifacts import load_artifacts, write_artifacts
from ctlens.api.uploads import IMAGE_KINDS, StagedUpload
from ctlens.api.viewer import default_preset, reader_warnings, split_warning
from ctlens.core.errors import CTLensError, ServiceError
from ctlens.core.volume import Volume
from ctlens.io.clean_descriptor import clean_descriptor
from ctlens.io.files import atomic_output
from ctlens.io.uid_hash import clean_series_labels
from ctlens.preprocess.display import to_display

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

logger = logging.getLogger("ctlens.api")

Progress = Callable[[float, str], None]

TEST_DELAY_ENV = "CTLENS_TEST_DELAY_BEFORE_READ_S"
"""Test hook: seconds to wait before reading a staged upload (crash-recovery tests kill the service meanwhile)."""


def series_rows(series: list[Any], analysed: int | None = None) -> list[dict[str, Any]]:
    """The series table (no identifiers: cleaned description, modality, kernel, orientation, size).

    The description keeps only allow-listed anatomical/technical words (PS3.15 Clean Descriptors,
    :func:`~ctlens.io.clean_descriptor.clean_descriptor`); selecting a series by its description still works
    on the raw headers, which never leave the reader.

    ``analysed`` (the index of the series that was read) marks its row; ``part`` says which acquisition, echo or
    series number of a split series the row is (``""`` when whole); ``selector`` (a stable, non-identifying key)
    is what to send as the ``series`` form field of ``POST /api/analyze`` to analyse that entry instead.
    """
    return [
        {
            "index": s.index,
            "description": clean_descriptor(s.description, extra_words=[s.kernel]),
            "modality": s.modality,
            "kernel": s.kernel,
            "orientation": s.orientation,
            "slices": s.n_slices,
            "matrix": [s.rows, s.columns],
            "part": s.part,
            "analysed": s.index == analysed,
            "selector": s.series_id,
        }
        for s in series
    ]


def load_staged(staged: StagedUpload, series: str | None, max_image_pixels: int) -> tuple[Volume, list[dict]]:
    """The staged input as a volume and its DICOM series table (one DICOM series chosen by ``series``).

    An image over ``max_image_pixels`` is refused with 413 before it is decoded.
    """
    from PIL import Image

    from ctlens.io import list_series, load
    from ctlens.io.dicom_series import select_series

    if staged.kind == "dicom":
        infos = list_series(staged.input_path)
        volume = load(staged.input_path, series=series or None, uneven="resample")  # one rule: select_series's
        chosen = select_series(infos, series or None, "upload")[0].index if infos else None
        split = split_warning(
            [s.series_uid for s in infos], chosen if chosen is not None else -1, [s.part for s in infos]
        )
        if split:
            volume.meta["warnings"] = [*(volume.meta.get("warnings") or []), split]
        return volume, series_rows(infos, chosen)
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


def _user_models_dir(value: Any) -> Path | None:
    if value is FROM_SETTINGS:
        from ctlens.core.settings import get_settings

        return get_settings().user_models_dir
    return None if value is None else Path(value)


def user_model_entries(
    volume: Volume, kind: str | None, findings: dict[str, Any] | None, folder: Path | None
) -> list[dict[str, Any]]:
    """The user classifiers of ``folder`` run on the study (:func:`ctlens.analysis.user_models.run_user_models`).

    2-D models see the slice of the first candidate (else the middle slice), CT through the viewer's window for
    the body region. [] without a folder or model files; never raises.

    Example:
        >>> user_model_entries(Volume(__import__("numpy").zeros((2, 4, 4))), "dicom", None, None)
        []
    """
    if folder is None:
        return []
    from ctlens.analysis.user_models import find_model_files, run_user_models

    if not find_model_files(folder):
        return []
    candidates = (findings or {}).get("candidates") or []
    centre = candidates[0].get("centre_voxel") if candidates and isinstance(candidates[0], dict) else None
    key_slice = int(round(float(centre[0]))) if centre else None
    try:
        return run_user_models(
            volume, folder, key_slice=key_slice, window=default_preset(volume.modality, kind, findings)
        )
    except Exception as exc:  # run_user_models does not raise for a model; this guards the folder itself
        logger.exception("user models failed for this study")
        return [
            {"warning": f"user models could not run ({type(exc).__name__})", "note": "model output, not a diagnosis"}
        ]


def refresh_user_models(result: dict[str, Any], folder: Path, models_dir: Path | None) -> dict[str, Any] | None:
    """A cached result brought up to date with the models now in ``models_dir``, or None when it already is.

    Compares the folder's :func:`~ctlens.analysis.user_models.models_fingerprint` with the one stored; when models
    were added, removed or rewritten they run on the stored volume in ``folder`` and ``result.json`` is rewritten.
    ``result`` itself is not changed; a study whose stored data are gone is left as it is.

    Example:
        >>> refresh_user_models({"kind": "png"}, Path("."), None) is None
        True
    """
    from ctlens.analysis.user_models import models_fingerprint

    fingerprint = models_fingerprint(models_dir)
    if fingerprint == result.get("user_models_fingerprint"):
        return None
    try:
        volume = load_artifacts(folder).volume
    except (CTLensError, OSError, ValueError):  # deleted or damaged meanwhile: answer what is stored
        return None
    updated = {k: v for k, v in result.items() if k not in ("user_models", "user_models_fingerprint")}
    entries = user_model_entries(volume, result.get("kind"), result.get("findings"), models_dir)
    if entries:
        updated["user_models"], updated["user_models_fingerprint"] = entries, fingerprint
    try:
        with atomic_output(folder / "result.json") as tmp:
            tmp.write_text(json.dumps(updated, default=str))
    except CTLensError:  # the study was deleted meanwhile: the outputs are still answered, not kept
        pass
    return updated


def _known_region(findings: dict[str, Any] | None) -> dict[str, Any]:
    """The body region the analysis found (and its coverage), so the zero-shot domain check need not redo it."""
    if not isinstance(findings, dict) or not findings.get("region"):
        return {}
    coverage = (findings.get("measurements") or {}).get("region_coverage")
    return {"region": findings["region"], "coverage": coverage if isinstance(coverage, dict) else None}


def zero_shot_applies(kind: str | None, modality: str | None, shape: Any) -> bool:
    """Zero-shot findings are for 3-D CT only (not 2-D images, other modalities or single slices).

    Example:
        >>> zero_shot_applies("dicom", "CT", [10, 32, 32]), zero_shot_applies("png", "CT", [1, 32, 32])
        (True, False)
    """
    return kind not in IMAGE_KINDS and modality == "CT" and bool(shape) and int(shape[0]) > 1


def zero_shot_is_current(result: dict[str, Any], checkpoint: Path | None) -> bool:
    """Whether a stored result needs no (new) zero-shot scores for the configured ``checkpoint``.

    True without a checkpoint (whatever the result holds stays), for studies zero-shot does not apply to, and
    when the stored scores name the same checkpoint (folder name and content fingerprint,
    :func:`ctlens.api.services.checkpoint_identity`). A stored warning for the same checkpoint also counts
    (the same files would fail the same way); new files give a new fingerprint, so they are tried.

    Example:
        >>> zero_shot_is_current({"kind": "dicom", "modality": "CT", "shape": [8, 4, 4]}, None)
        True
        >>> zero_shot_is_current({"kind": "dicom", "modality": "CT", "shape": [8, 4, 4]}, Path("ck"))
        False
    """
    if checkpoint is None or not zero_shot_applies(result.get("kind"), result.get("modality"), result.get("shape")):
        return True
    stored = result.get("zero_shot")
    if not isinstance(stored, dict):
        return False
    identity = services.checkpoint_identity(checkpoint)
    return all(stored.get(key) == value for key, value in identity.items())


def refresh_zero_shot(result: dict[str, Any], folder: Path, checkpoint: Path | None) -> dict[str, Any] | None:
    """A cached result brought up to date with ``checkpoint``, or None when it already is (no work done).

    The scores come from the stored, de-identified volume in ``folder`` (no re-upload); the new result is also
    written to the folder's ``result.json``. ``result`` itself is not changed. Never raises for the model
    (see :func:`ctlens.api.services.zero_shot_findings`); a study whose stored data are gone is left as it is.

    Example:
        >>> refresh_zero_shot({"kind": "png", "modality": "CT", "shape": [1, 4, 4]}, Path("."), Path("ck")) is None
        True
    """
    if checkpoint is None or zero_shot_is_current(result, checkpoint):
        return None
    try:
        volume = load_artifacts(folder).volume
    except (CTLensError, OSError, ValueError):  # deleted or damaged meanwhile: answer what is stored
        return None
    t0 = time.perf_counter()
    updated = dict(result)
    updated["zero_shot"] = services.zero_shot_findings(volume, checkpoint, **_known_region(result.get("findings")))
    updated["timings_s"] = {**(result.get("timings_s") or {}), "zero_shot": round(time.perf_counter() - t0, 3)}
    try:
        with atomic_output(folder / "result.json") as tmp:
            tmp.write_text(json.dumps(updated, default=str))
    except CTLensError:  # the study was deleted meanwhile: the scores are still answered, not kept
        pass
    logger.info("zero-shot findings of content %s updated for checkpoint %s", folder.name[:12], Path(checkpoint).name)
    return updated


def process_upload(
    staged: StagedUpload,
    folder: Path,
    *,
    series: str | None,
    max_image_pixels: int,
    progress: Progress | None = None,
    clip_checkpoint: Path | None = FROM_SETTINGS,
    on_read: Callable[[], None] | None = None,
    user_models_dir: Path | None = FROM_SETTINGS,
) -> dict[str, Any]:
    """Load the staged input, analyse it, write the artifacts into ``folder``; return the stored result.

    ``on_read`` is called as soon as the staged files are no longer needed (after reading; for 2-D images,
    which the image analysis reads again, after the analysis) and also when reading fails.
    With a CLIP checkpoint (``clip_checkpoint``, by default the ``clip_checkpoint`` setting) a 3-D CT also gets
    ``result["zero_shot"]``: finding probabilities, or a ``warning`` when the model could not run.
    With model files in ``user_models_dir`` (by default the ``user_models_dir`` setting) the result gets
    ``user_models`` (:func:`user_model_entries`).
    """
    report = progress or (lambda fraction, message: None)
    done_reading = on_read or (lambda: None)
    t0 = time.perf_counter()
    delay = float(os.environ.get(TEST_DELAY_ENV) or 0)
    if delay > 0:
        time.sleep(delay)
    report(0.05, "reading")
    try:
        volume, found = load_staged(staged, series, max_image_pixels)
    except ServiceError as exc:
        done_reading()
        raise ServiceError(clean_series_labels(exc.reason), status=exc.status, hint=exc.hint) from None
    except CTLensError as exc:
        done_reading()
        # The reason, without the staging path (it means nothing to the caller) and without series descriptions.
        hint = clean_series_labels(exc.hint) if exc.hint else exc.hint
        raise ServiceError(clean_series_labels(exc.reason), status=422, hint=hint) from None
    except BaseException:
        done_reading()
        raise
    if staged.kind not in IMAGE_KINDS:
        done_reading()
    volume = to_display(volume)  # one display rule: stored, analysed and drawn anterior-up, patient left on the right
    t_load = time.perf_counter() - t0
    report(0.35, "analysing")
    analysis: dict[str, Any] = {"status": "done", "reason": ""}
    findings, heat, roi, labels = None, None, None, None
    try:
        if staged.kind in IMAGE_KINDS:
            findings, heat, roi = services.analyze_image(staged.input_path, volume.shape)
        else:
            findings, heat, roi, labels = services.analyze_volume(volume)
    except ServiceError as exc:
        analysis = {"status": "unavailable", "reason": exc.reason}
    except CTLensError as exc:
        analysis = {"status": "failed", "reason": exc.reason}
    except Exception as exc:  # the analysis must not take the upload down with it
        logger.exception("analysis failed for content %s", staged.sha256[:12])
        analysis = {"status": "failed", "reason": f"{type(exc).__name__} during analysis"}
    done_reading()
    t_analysis = time.perf_counter() - t0 - t_load
    checkpoint = _clip_checkpoint(clip_checkpoint)
    zero_shot = None
    if checkpoint is not None and zero_shot_applies(staged.kind, volume.modality, volume.shape):
        report(0.8, "zero-shot findings")
        zero_shot = services.zero_shot_findings(volume, checkpoint, **_known_region(findings))
    elif checkpoint is not None and staged.kind not in IMAGE_KINDS and len(volume.shape) == 3 and volume.shape[0] > 1:
        zero_shot = {
            **services.checkpoint_identity(checkpoint),
            "probabilities": None,
            "note": services.ZERO_SHOT_NOTE,
            "warning": f"zero-shot skipped: the scan is {volume.modality or 'not CT'}, the model reads CT; no scores",
        }
    t_zero_shot = time.perf_counter() - t0 - t_load - t_analysis
    models_dir = _user_models_dir(user_models_dir)
    user_models = user_model_entries(volume, staged.kind, findings, models_dir)
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
        "has_lung_labels": labels is not None,
        "reader_warnings": reader_warnings(volume.meta.get("warnings") or []),
        "timings_s": {"load": round(t_load, 3), "analysis": round(t_analysis, 3)},
    }
    if zero_shot is not None:
        result["zero_shot"] = zero_shot
        result["timings_s"]["zero_shot"] = round(t_zero_shot, 3)
    if user_models:
        from ctlens.analysis.user_models import models_fingerprint

        result["user_models"] = user_models
        result["user_models_fingerprint"] = models_fingerprint(models_dir)
    write_artifacts(folder, volume, result, heat, roi, labels)
    report(1.0, "done")
    logger.info("content %s analysed: %s voxels in %.2f s", staged.sha256[:12], volume.shape, time.perf_counter() - t0)
    return result


def analyse_now(
    ctx: ServiceContext, staged: StagedUpload, *, series: str | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """:func:`process_upload` with the service's settings; the staged files are discarded, the result remembered.

    The caller decides what a failure means: a request forgets the content (the next upload tries again), a job
    records it as failed (its poller reads the reason).
    """
    try:
        result = process_upload(
            staged,
            ctx.content_dir(staged.sha256),
            series=series,
            max_image_pixels=ctx.settings.max_image_pixels,
            progress=progress,
            clip_checkpoint=ctx.settings.clip_checkpoint,
            on_read=staged.discard,  # the raw upload goes as soon as it is read
            user_models_dir=ctx.settings.user_models_dir,
        )
    finally:
        staged.discard()  # also on any failure
    ctx.remember_result(staged.sha256, result)
    return result
