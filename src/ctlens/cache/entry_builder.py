"""Prepare one image and write its cache entry: the per-image function every executor runs.

:func:`build_entry` takes and returns plain dicts (picklable for process pools and Ray tasks). It
never raises for a bad image: the failure is written to ``<image>.failed.json`` with a category
(``unreadable``, ``empty``, ``one slice``, ``mixed series``, ``geometry``, ``error``) and a detail line.

Writing is atomic per file (:func:`ctlens.io.files.atomic_output`) and per entry (the old manifest is removed
first, the new one written last), so a process killed at any moment leaves either a complete entry or one
without a manifest, which the next build redoes. It is also durable: each array is fsynced before its rename
and the folder after it, before the manifest is written (itself fsynced, renamed, folder fsynced), so a power
cut cannot leave a manifest that points at empty or partial arrays.

Example:
    >>> import pathlib, tempfile, nibabel as nib, numpy as np
    >>> from dataclasses import asdict
    >>> from ctlens.cache.metadata import DatasetMetadata
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "raw" / "s1").mkdir(parents=True)
    >>> ct = np.full((20, 20, 3), -1000, np.int16); ct[5:15, 5:15] = 60; ct[8, 8] = 1500
    >>> nib.save(nib.Nifti1Image(ct, np.eye(4)), root / "raw" / "s1" / "ct.nii.gz")
    >>> entry = DatasetMetadata.from_directory(root).entries[0]
    >>> result = build_entry(str(root), str(root / "processed"), asdict(entry), CacheSettings().as_dict())
    >>> result["status"], sorted(p.name for p in (root / "processed" / "s1").iterdir())
    ('built', ['ct.json', 'ct_blood.npy', 'ct_bone.npy', 'ct_brain.npy', 'ct_mask.npy'])
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.cache.layout import (
    CACHE_FORMAT,
    CacheSettings,
    array_name,
    entry_key,
    failure_path,
    manifest_path,
    to_uint8,
    write_json_atomic,
)
from ctlens.cache.metadata import ImageEntry, load_entry_volume
from ctlens.core.errors import (
    CorruptFileError,
    CTLensError,
    GeometryError,
    InputNotFoundError,
    SeriesSelectionError,
    UnsupportedFormatError,
)
from ctlens.io.files import atomic_output, fsync_dir

__all__ = ["build_entry", "prepare_arrays"]


class _BadImage(Exception):
    def __init__(self, category: str, detail: str) -> None:
        super().__init__(detail)
        self.category, self.detail = category, detail


def _category(exc: BaseException) -> str:
    if isinstance(exc, _BadImage):
        return exc.category
    if isinstance(exc, CorruptFileError | InputNotFoundError | UnsupportedFormatError | SeriesSelectionError):
        return "unreadable"
    if isinstance(exc, GeometryError):
        return "geometry"
    return "error"


def prepare_arrays(volume: Any, mode: str, settings: CacheSettings) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """``(uint8 windows, uint8 mask, view)`` of a Volume as the cache stores them.

    :func:`ctlens.preprocess.prepare_for_inference` with the cache's spacing, patch and method; CT
    windows beyond NeuroVFM's three (``lung`` ...) come from the same HU grid.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.full((4, 20, 20), -1000, np.int16), spacing=(4.0, 1.0, 1.0))
        >>> arrs, mask, view = prepare_arrays(v, "ct", CacheSettings(ct_windows=("brain", "lung")))
        >>> sorted(arrs), arrs["lung"].dtype, arrs["lung"].shape
        (['brain', 'lung'], dtype('uint8'), (4, 32, 32))
    """
    from ctlens.preprocess import CT_CHANNELS, apply_window, prepare_for_inference, to_model_grid

    kw = {"spacing": settings.spacing, "patch": settings.patch, "method": settings.method}
    arrs, mask, view = prepare_for_inference(volume, mode=mode, **kw)
    wanted = settings.windows_for(mode)
    extra = [w for w in wanted if w not in arrs]
    if extra:
        hu = to_model_grid(volume, fill_value=-1024.0, **kw).array
        arrs.update({w: apply_window(hu, w) for w in extra if w not in CT_CHANNELS})
    return {w: to_uint8(arrs[w]) for w in wanted}, to_uint8(mask), view


def _file_record(path: Path, arr: np.ndarray) -> dict[str, Any]:
    size = path.stat().st_size
    return {
        "file": path.name,
        "bytes": size,
        "offset": size - arr.nbytes,  # the .npy header's length: the data start (for a direct mmap)
        "shape": list(arr.shape),
        "sha256": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(),
    }


def build_entry(data_dir: str, processed_dir: str, entry: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Prepare the image ``entry`` (an :class:`ImageEntry` as a dict) and write its cache entry.

    Returns ``{"study", "image", "status": "built" | "failed", "reason", "detail", "seconds"}``.
    See the module doc for an example.
    """
    start = time.perf_counter()
    item = ImageEntry(**entry)
    cfg = CacheSettings(**settings)
    processed = Path(processed_dir)
    folder = processed / item.study
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        fsync_dir(processed)  # the study folder's own name is on disk too
    key = entry_key(item.content_hash, item.series, item.mode, cfg)
    manifest = manifest_path(processed, item.study, item.image)
    failed = failure_path(processed, item.study, item.image)
    had_record = manifest.exists() or failed.exists()
    manifest.unlink(missing_ok=True)  # the entry is incomplete from here until the new manifest lands
    failed.unlink(missing_ok=True)
    if had_record:
        fsync_dir(folder)  # the removal is on disk before any array of the old entry is replaced
    result: dict[str, Any] = {"study": item.study, "image": item.image, "status": "built", "reason": "", "detail": ""}
    try:
        if item.problem:
            raise _BadImage(item.problem, item.problem_detail)
        volume = load_entry_volume(data_dir, item)
        if min(volume.shape) < 2:
            raise _BadImage("one slice", f"{item.source}: volume of shape {volume.shape} has a single slice")
        lo, hi = float(np.min(volume.array)), float(np.max(volume.array))
        if lo == hi:
            raise _BadImage("empty", f"{item.source}: every voxel has the value {lo:g} (no image content)")
        mode = item.mode
        if mode is None:
            from ctlens.preprocess import detect_mode

            mode, item.mode_reason = detect_mode(volume)
        arrs, mask, view = prepare_arrays(volume, mode, cfg)
        files: dict[str, Any] = {}
        for channel, arr in [*arrs.items(), ("mask", mask)]:
            # fsynced, renamed, folder fsynced: every array is on disk before the manifest that points at it
            with atomic_output(folder / array_name(item.image, channel)) as tmp:
                np.save(tmp, arr, allow_pickle=False)
                files[channel] = _file_record(tmp, arr)
        seconds = time.perf_counter() - start
        write_json_atomic(
            manifest,
            {
                "format": CACHE_FORMAT,
                "key": key,
                "study": item.study,
                "image": item.image,
                "source": item.source,
                "series": item.series,
                "content_hash": item.content_hash,
                "mode": mode,
                "mode_reason": item.mode_reason,
                "view": view,
                "shape": list(mask.shape),
                "windows": list(arrs),
                "files": files,
                "foreground_fraction": round(float(mask.mean()), 6),
                "settings": cfg.as_dict(),
                "seconds": round(seconds, 4),
            },
        )
    except Exception as exc:  # noqa: BLE001 - a bad image is recorded, never allowed to stop the build
        detail = exc.detail if isinstance(exc, _BadImage) else exc.one_line() if isinstance(exc, CTLensError) else ""
        detail = detail or f"{item.source}: {type(exc).__name__}: {exc}"
        result.update(status="failed", reason=_category(exc), detail=detail)
        write_json_atomic(
            failed,
            {"format": CACHE_FORMAT, "key": key, "study": item.study, "image": item.image, "source": item.source,
             "reason": result["reason"], "detail": detail},
        )  # fmt: skip
    result["seconds"] = round(time.perf_counter() - start, 4)
    return result
