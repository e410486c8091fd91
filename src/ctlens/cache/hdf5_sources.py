"""What the HDF5 export reads, and the work done on each input in a worker process.

:func:`discover_volumes` lists the inputs below a folder (DICOM folders with only their own files, ``.zip``
archives, NIfTI / NRRD / MHA files) with the dataset name each gets; :func:`prepare_source` loads one input (every
DICOM series of a folder or zip) and turns each volume into its CLIP array
(:func:`ctlens.preprocess.clip_input.to_clip_array`) and its metadata row, or records why it cannot.
:mod:`ctlens.cache.hdf5_export` runs it in worker processes and writes the results.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "a" / "b").mkdir(parents=True)
    >>> (root / "a" / "b" / "ct.nii.gz").write_bytes(b"x")
    1
    >>> [(s.kind, s.rel, s.name) for s in discover_volumes(root)]
    [('image', 'a/b/ct.nii.gz', 'a__b__ct')]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.cache.metadata import image_name
from ctlens.core.errors import CTLensError, InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.io.suffixes import ZIP_SUFFIX, is_document, is_volume_file, strip_suffix

__all__ = [
    "META_COLUMNS",
    "PreparedVolume",
    "VolumeSource",
    "discover_volumes",
    "init_worker",
    "prepare_source",
    "short_reason",
    "source_name",
]


@dataclass(frozen=True)
class VolumeSource:
    """One input to prepare: a DICOM folder (its own files only), a zip archive or an image file.

    ``name`` is the HDF5 dataset name stem, ``rel`` the path relative to the input folder (POSIX), ``files``
    the DICOM files of a folder (empty for a zip or image file).
    """

    kind: str
    path: Path
    rel: str
    name: str
    files: tuple[Path, ...] = ()


def source_name(rel: str) -> str:
    """The dataset name of a relative path: no volume / zip suffix, ``/`` -> ``__``, other unsafe characters ``_``.

    Example:
        >>> source_name("Lung Dx/A0002.nii.gz"), source_name(".")
        ('Lung_Dx__A0002', 'volume')
    """
    stem = strip_suffix(rel)
    parts = [image_name(p, fallback="_") for p in stem.split("/")]
    return "__".join(parts) if stem not in ("", ".") else "volume"


def _is_zip(path: Path) -> bool:
    return path.name.lower().endswith(ZIP_SUFFIX)


def discover_volumes(root: str | os.PathLike[str]) -> list[VolumeSource]:
    """Every input below ``root``: DICOM folders at any depth, ``.zip`` archives, NIfTI / NRRD / MHA files.

    A folder counts as DICOM when it directly holds a readable DICOM file; only its own files belong to
    it (sub-folders are their own inputs). ``root`` may also be one file or zip. Names are the relative
    path without suffix, ``/`` replaced by ``__``, other unsafe characters by ``_``; made unique.
    """
    from ctlens.io.dicom_headers import dicom_folders
    from ctlens.io.discover import volume_files

    base = Path(root)
    if not base.exists():
        raise InputNotFoundError("no such file or folder", path=base, hint="pass the folder holding the volumes")
    if base.is_file():
        kind = "zip" if _is_zip(base) else "image" if is_volume_file(base.name) else "dicom"
        files = (base,) if kind == "dicom" else ()
        return [VolumeSource(kind, base, base.name, source_name(base.name), files)]
    sources: list[VolumeSource] = []
    for path in volume_files(base, zips=True):
        rel = path.relative_to(base).as_posix()
        sources.append(VolumeSource("zip" if _is_zip(path) else "image", path, rel, source_name(rel)))
    for folder in dicom_folders(base):
        files = tuple(
            p
            for p in sorted(folder.iterdir())
            if p.is_file() and not _is_zip(p) and not is_volume_file(p.name) and not is_document(p.name)
        )
        rel = folder.relative_to(base).as_posix()
        sources.append(VolumeSource("dicom", folder, rel, source_name(rel if rel != "." else base.name), files))
    seen: dict[str, int] = {}
    unique = []
    for src in sorted(sources, key=lambda s: s.rel):
        count = seen.get(src.name, 0) + 1
        seen[src.name] = count
        unique.append(
            src if count == 1 else VolumeSource(src.kind, src.path, src.rel, f"{src.name}__{count}", src.files)
        )
    return unique


@dataclass
class PreparedVolume:
    """One volume's outcome: its CLIP array and dataset attributes, its metadata row, or the reason it failed."""

    name: str
    source: str
    array: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def short_reason(exc: BaseException) -> str:
    """One line (at most 500 characters) saying why ``exc`` stopped an input.

    Example:
        >>> short_reason(ValueError("bad\\n  value"))
        'ValueError: bad value'
    """
    if isinstance(exc, CTLensError):
        text = exc.reason + (f" ({exc.hint})" if exc.hint else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


META_COLUMNS = (
    "manufacturer",
    "model",
    "kernel",
    "body_part",
    "slice_thickness",
    "kvp",
    "tube_current_ma",
    "gantry_tilt_deg",
    "tilt_corrected",
    "resampled_equidistant",
)
"""Metadata CSV columns copied from ``Volume.meta`` under the same key (acquisition facts, all de-identified)."""


def _row(volume: Volume, mode_reason: str) -> dict[str, Any]:
    meta = volume.meta
    return {
        "modality": volume.modality,
        "mode_reason": mode_reason,
        **{key: meta.get(key, "") for key in META_COLUMNS},
        "study_uid_hash": meta.get("study_uid", ""),
        "series_uid_hash": meta.get("series_uid", ""),
        "warnings": "; ".join(str(w) for w in meta.get("warnings", []) or []),
    }


def _prepare_one(volume: Volume, name: str, source: str, params: dict[str, Any]) -> PreparedVolume:
    from ctlens.preprocess.clip_input import to_clip_array
    from ctlens.preprocess.mode import detect_mode

    result = PreparedVolume(name, source)
    mode, why = detect_mode(volume)
    result.row = _row(volume, why)
    if min(volume.shape) < 2:
        result.reason = f"not a 3-D volume: shape {volume.shape} (one slice)"
    elif params["ct_only"] and mode != "ct":
        result.reason = f"not a CT volume ({why}); the HU clip needs CT"
    elif volume.array.dtype.kind == "f" and not np.isfinite(volume.array).all():
        result.reason = "the volume holds non-finite values (NaN / inf)"
    elif float(np.ptp(volume.array)) == 0:
        result.reason = f"empty volume: every voxel is {volume.array.flat[0]}"
    if result.reason:
        return result
    arr, attrs = to_clip_array(volume, params["target_shape"], params["slice_order"], params["hu_clip"])
    attrs.update(source=source, modality=volume.modality)
    result.array, result.attrs = arr, attrs
    return result


def prepare_source(src: VolumeSource, params: dict[str, Any]) -> list[PreparedVolume]:
    """Load and prepare every volume of one source (runs in a worker process); never raises for a bad input.

    ``params``: ``target_shape``, ``slice_order``, ``hu_clip`` (:func:`~ctlens.preprocess.clip_input.to_clip_array`)
    and ``ct_only``; with ``ct_rate_metadata`` (a CSV path) image files are CT-RATE volumes of stored values read
    with their metadata row (``ct_rate_axes``: the array layout, :mod:`ctlens.io.ct_rate`). A folder or zip with
    several series gives one result per series (``<name>__s<index>``).
    """
    from ctlens.io.loader import load

    options = {"uneven": "resample", "tilt": "correct"}
    try:
        if src.kind == "image" and params.get("ct_rate_metadata"):
            return [_prepare_one(_load_ct_rate(src, params), src.name, src.rel, params)]
        if src.kind == "image":
            return [_prepare_one(load(src.path), src.name, src.rel, params)]
        from ctlens.io.dicom_reader import list_series

        target: Any = list(src.files) if src.kind == "dicom" else src.path
        series = list_series(target)
        if not series:
            return [PreparedVolume(src.name, src.rel, reason="no DICOM series found")]
    except Exception as exc:  # noqa: BLE001 -- every failure is recorded with its reason, never stops the export
        return [PreparedVolume(src.name, src.rel, reason=short_reason(exc))]
    results = []
    for info in series:
        name = src.name if len(series) == 1 else f"{src.name}__s{info.index}"
        source = src.rel if len(series) == 1 else f"{src.rel}#series{info.index}"
        try:
            results.append(_prepare_one(load(target, series=info.index, **options), name, source, params))
        except Exception as exc:  # noqa: BLE001
            results.append(PreparedVolume(name, source, reason=short_reason(exc)))
    return results


def _load_ct_rate(src: VolumeSource, params: dict[str, Any]) -> Volume:
    """A CT-RATE NIfTI with its metadata row applied (:func:`ctlens.io.ct_rate.load_ct_rate`)."""
    from ctlens.core.errors import UnsupportedFormatError
    from ctlens.io.ct_rate import load_ct_rate

    if not src.path.name.lower().endswith((".nii", ".nii.gz")):
        raise UnsupportedFormatError("CT-RATE metadata applies to NIfTI volumes only", path=src.rel)
    return load_ct_rate(src.path, params["ct_rate_metadata"], axes=params.get("ct_rate_axes", "yxz"))


def init_worker() -> None:
    """Worker set-up: one ITK thread each (the processes give the parallelism); reader warnings go to the CSV."""
    import logging

    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    logging.getLogger("ctlens").setLevel(logging.ERROR)
