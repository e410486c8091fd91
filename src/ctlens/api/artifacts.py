"""What the service keeps per analysed content: a de-identified volume and its analysis, under one folder.

``<service_dir>/content/<sha256>/`` holds ``volume.npy`` (the array, memory-mapped when read), ``meta.json``
(geometry and de-identified facts), ``result.json``, ``heatmap.npy`` / ``roi.npy`` / ``labels.npy`` (uint8, same
grid; ``labels`` holds the lung labels of a chest analysis, 1 right / 2 left) and, made on demand,
``volume.nii.gz``, ``compressed.ctz`` and the viewer's overlays (``heatmap.nii.gz``, ``labels.nii.gz``). Every
file is written with :func:`ctlens.io.files.atomic_output` and ``volume.npy`` last, so a reader (which needs
``volume.npy``, and the content row marked ready after it) never sees half of a folder; a folder a killed save left
half-written is removed by the recovery sweep (:mod:`ctlens.api.recovery`). The raw upload (which may carry
patient identifiers in its DICOM headers) is never kept.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from ctlens.core.volume import Volume
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_artifacts(root / "abc", Volume(np.zeros((2, 3, 4), np.int16)), {"findings": None}, None, None)
    >>> load_artifacts(root / "abc").volume.shape
    (2, 3, 4)
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import ServiceError
from ctlens.core.volume import Volume
from ctlens.io.files import atomic_output


@dataclass
class Artifacts:
    """A stored content: the volume (array memory-mapped), heatmap / ROI / lung-label arrays and the stored result."""

    folder: Path
    volume: Volume
    heatmap: np.ndarray | None
    roi: np.ndarray | None
    result: dict[str, Any]
    labels: np.ndarray | None = None


def write_artifacts(
    folder: Path,
    volume: Volume,
    result: dict[str, Any],
    heatmap: np.ndarray | None,
    roi: np.ndarray | None,
    labels: np.ndarray | None = None,
) -> None:
    """Write everything for one content into ``folder`` (replacing what was there), each file atomically.

    ``volume.npy`` comes last: a folder without it is incomplete and never read. On any error the folder is removed.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    geometry = {
        "spacing": list(volume.spacing),
        "origin": list(volume.origin),
        "direction": volume.direction.tolist(),
        "modality": volume.modality,
        "meta": volume.meta,
    }
    arrays = {"heatmap.npy": heatmap, "roi.npy": roi, "labels.npy": None if labels is None else labels.astype(np.uint8)}
    try:
        for name, value in (("meta.json", geometry), ("result.json", result)):
            with atomic_output(folder / name) as tmp:
                tmp.write_text(json.dumps(value, default=str))
        for name, array in [*arrays.items(), ("volume.npy", np.ascontiguousarray(volume.array))]:
            if array is not None:
                with atomic_output(folder / name) as tmp:
                    np.save(tmp, array)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _load(folder: Path) -> Artifacts:
    if not (folder / "volume.npy").exists():
        raise ServiceError("the study's stored data are missing", status=404)
    geometry = json.loads((folder / "meta.json").read_text())
    array = np.load(folder / "volume.npy", mmap_mode="r")
    volume = Volume(
        array,
        spacing=tuple(geometry["spacing"]),
        origin=tuple(geometry["origin"]),
        direction=np.asarray(geometry["direction"]),
        modality=geometry["modality"],
        meta=geometry.get("meta") or {},
    )
    heat = np.load(folder / "heatmap.npy", mmap_mode="r") if (folder / "heatmap.npy").exists() else None
    roi = np.load(folder / "roi.npy", mmap_mode="r") if (folder / "roi.npy").exists() else None
    labels = np.load(folder / "labels.npy", mmap_mode="r") if (folder / "labels.npy").exists() else None
    result = json.loads((folder / "result.json").read_text())
    return Artifacts(folder, volume, heat, roi, result, labels)


def stored_warnings(folder: Path) -> list[str]:
    """The reader's warnings kept in ``folder/meta.json`` ([] when missing or unreadable).

    Example:
        >>> stored_warnings(Path("no-such-folder"))
        []
    """
    try:
        meta = json.loads((folder / "meta.json").read_text()).get("meta") or {}
    except (OSError, ValueError, AttributeError):
        return []
    warnings = meta.get("warnings") if isinstance(meta, dict) else None
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


_CACHE: OrderedDict[str, Artifacts] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 16


def load_artifacts(folder: Path) -> Artifacts:
    """The stored content in ``folder`` (a small in-process LRU keeps recent ones open)."""
    key = str(folder)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit.folder.exists():
            _CACHE.move_to_end(key)
            return hit
    art = _load(folder)
    with _CACHE_LOCK:
        _CACHE[key] = art
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return art


def forget_artifacts(folder: Path) -> None:
    """Drop ``folder`` from the LRU and delete it."""
    with _CACHE_LOCK:
        _CACHE.pop(str(folder), None)
    shutil.rmtree(folder, ignore_errors=True)
