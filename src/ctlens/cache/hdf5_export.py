"""Export a folder of CT volumes to one HDF5 file of fixed-shape uint8 arrays, for 3D CLIP training.

Every volume goes through :func:`to_clip_array`:

1. **orientation** (exact, :func:`~ctlens.preprocess.orientation.reorient`): NIfTI codes ``RAS`` for
   ``slice_order="b2u"`` (bottom to up), ``RAI`` for ``"u2b"`` (up to bottom). In ctlens **array order**
   ``[z, y, x]`` the stored array's axes point ``(S, A, R)`` resp. ``(I, A, R)``: axis 0 is the slice axis
   (``b2u``: index 0 is the most inferior slice, the index grows towards the head), axis 1 grows towards
   Anterior (row 0 is the patient's back), axis 2 grows towards the patient's Right (column 0 is the
   patient's left side);
2. **HU clip** to ``hu_clip`` (default ``[-1000, 1000]``);
3. **aspect-preserving resize**: one isotropic spacing ``s = max(extent_mm / target_shape)`` for all three
   axes (``extent_mm = shape * spacing``), so the physical proportions are kept and the volume fits
   ``target_shape``; Gaussian anti-aliasing before down-sampling (sigma ``(factor - 1) / 2`` voxels, the
   rule of scikit-image's ``resize``), then linear interpolation (SimpleITK), grid centred on the input;
4. **centre pad** to ``target_shape`` with ``hu_clip[0]`` (extra voxel after when odd);
5. **uint8**: ``u = round((hu - lo) / (hi - lo) * 255)``; back to HU: ``hu = lo + u * (hi - lo) / 255``.

:func:`export_hdf5` discovers volumes (:func:`discover_volumes`), prepares them in worker processes, and
the parent alone writes one HDF5 dataset per volume name (written to a temporary file, renamed when
complete). Inputs that fail are recorded with their reason and do not stop the export. Temporary files of
an earlier export to the same file that was killed are removed first (an exclusive lock file tells that their
owner is dead). ``name_mode="hash"`` names datasets by a salted SHA-256 of their relative path, keeping the
paths (which may name patients) in a local CSV instead of the file. The file format is specified in
``docs/hdf5_export.md``.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> ct = np.full((10, 64, 64), -1000, np.int16); ct[2:8, 16:48, 16:48] = 40
    >>> arr, attrs = to_clip_array(Volume(ct, spacing=(5.0, 1.0, 1.0)), target_shape=(32, 48, 48))
    >>> arr.shape, arr.dtype, attrs["spacing"], attrs["resized_shape"]
    ((32, 48, 48), dtype('uint8'), (1.5625, 1.5625, 1.5625), (32, 41, 41))
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import glob
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ctlens.core.errors import CacheBusyError, CTLensError, InputNotFoundError
from ctlens.core.progress import ProgressCallback, announce
from ctlens.core.volume import Volume

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_COLUMNS",
    "NAMES_COLUMNS",
    "ExportReport",
    "VolumeSource",
    "discover_volumes",
    "export_hdf5",
    "hashed_name",
    "names_csv_path",
    "to_clip_array",
]

FORMAT_NAME = "ctlens-clip-volumes"
"""Value of the root attribute ``format`` of an exported file."""
FORMAT_VERSION = 1
"""Value of the root attribute ``format_version``; bumped when the layout changes."""

SliceOrder = Literal["b2u", "u2b"]
NameMode = Literal["path", "hash"]
_NIFTI_CODES = {"b2u": "RAS", "u2b": "RAI"}
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_SKIP_NAMES = ("license", "readme")

METADATA_COLUMNS = (
    "name",
    "source",
    "status",
    "reason",
    "modality",
    "mode_reason",
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
    "study_uid_hash",
    "series_uid_hash",
    "original_shape",
    "original_spacing",
    "resized_shape",
    "spacing",
    "warnings",
)
"""Columns of the metadata CSV, in order (``docs/hdf5_export.md`` defines each)."""

NAMES_COLUMNS = ("name", "source", "status", "reason", "salt")
"""Columns of the local name -> source CSV written with ``name_mode="hash"`` (never put in the HDF5 file)."""
HASH_HEX_CHARS = 16
"""Hex characters of SHA-256 kept in a hashed dataset name (64 bits: collisions ~1e-8 for 1e6 volumes)."""


# --------------------------------------------------------------------------------------------------------------
# one volume


def _check_args(target_shape: Sequence[int], slice_order: str, hu_clip: Sequence[float]) -> tuple:
    shape = tuple(int(n) for n in target_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"target_shape must be three positive integers (z, y, x), got {target_shape!r}")
    if slice_order not in _NIFTI_CODES:
        raise ValueError(f"slice_order must be 'b2u' (bottom to up) or 'u2b' (up to bottom), got {slice_order!r}")
    lo, hi = (float(v) for v in hu_clip)
    if not hi > lo:
        raise ValueError(f"hu_clip must be (low, high) with high > low, got {hu_clip!r}")
    return shape, lo, hi


def _antialias(arr: np.ndarray, old: Sequence[float], new: float) -> np.ndarray:
    """Gaussian pre-filter along each down-sampled axis: sigma = (factor - 1) / 2 voxels (scikit-image's rule)."""
    from scipy import ndimage

    sigma = [max(0.0, (new / s - 1.0) / 2.0) for s in old]
    if max(sigma) <= 0:
        return arr
    return ndimage.gaussian_filter(arr, sigma=sigma, mode="nearest", truncate=3.0)


def to_clip_array(
    volume: Volume,
    target_shape: Sequence[int] = (160, 224, 224),
    slice_order: SliceOrder = "b2u",
    hu_clip: Sequence[float] = (-1000.0, 1000.0),
    *,
    antialias: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``(uint8 array of target_shape, attrs)``: the module doc's five steps on one CT volume.

    ``attrs`` holds the HDF5 dataset attributes (geometry after resize and padding, original shape /
    spacing in the output's axis order, clip, slice order); see ``docs/hdf5_export.md``.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.arange(4 * 8 * 8, dtype=np.int16).reshape(4, 8, 8) - 1000, spacing=(2.0, 1.0, 1.0))
        >>> arr, attrs = to_clip_array(v, target_shape=(8, 8, 8), antialias=False)
        >>> attrs["axcodes"], attrs["nifti_axcodes"], int(arr[0].mean()) < int(arr[-1].mean())
        ('SAR', 'RAS', True)
    """
    from ctlens.preprocess.orientation import axcodes, reorient
    from ctlens.preprocess.resample import resample

    target, lo, hi = _check_args(target_shape, slice_order, hu_clip)
    oriented = reorient(volume, _NIFTI_CODES[slice_order])
    clipped = np.clip(np.asarray(oriented.array, dtype=np.float32), lo, hi)
    extent = np.asarray(oriented.shape, dtype=np.float64) * np.asarray(oriented.spacing)
    step = float(np.max(extent / np.asarray(target)))
    if antialias:
        clipped = _antialias(clipped, oriented.spacing, step)
    resized = resample(oriented.with_array(clipped), (step, step, step), method="linear", fill_value=lo)
    arr = resized.array
    # rounding can never exceed the target (extent / step <= target), but guard against float noise
    over = [max(0, n - t) for n, t in zip(arr.shape, target, strict=True)]
    if any(over):
        arr = arr[tuple(slice(o // 2, o // 2 + min(n, t)) for o, n, t in zip(over, arr.shape, target, strict=True))]
        resized = resized.with_array(arr, origin=tuple(resized.world([o // 2 for o in over]).tolist()))
    before = [(t - n) // 2 for n, t in zip(arr.shape, target, strict=True)]
    widths = [(b, t - n - b) for b, n, t in zip(before, arr.shape, target, strict=True)]
    padded = np.pad(arr, widths, mode="constant", constant_values=lo)
    scaled = np.rint((np.clip(padded, lo, hi) - lo) * (255.0 / (hi - lo)))
    out = np.ascontiguousarray(scaled.astype(np.uint8))
    grid = resized.with_array(out, origin=tuple(resized.world([-b for b in before]).tolist()))
    lps = grid.affine
    # NIfTI affine: index (i, j, k) = (x, y, z) -> RAS mm
    ras_xyz = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps[:, [2, 1, 0, 3]]
    attrs: dict[str, Any] = {
        "spacing": (step, step, step),
        "original_shape": tuple(int(n) for n in oriented.shape),
        "original_spacing": tuple(float(s) for s in oriented.spacing),
        "resized_shape": tuple(int(n) for n in arr.shape),
        "pad_before": tuple(int(b) for b in before),
        "hu_clip": (lo, hi),
        "slice_order": slice_order,
        "axcodes": "".join(axcodes(grid)),
        "nifti_axcodes": _NIFTI_CODES[slice_order],
        "affine_lps_zyx": lps,
        "affine_ras_xyz": ras_xyz,
    }
    return out, attrs


# --------------------------------------------------------------------------------------------------------------
# discovery


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


def _name_of(rel: str) -> str:
    stem = rel
    for suffix in (*_VOLUME_SUFFIXES, ".zip"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", p).strip("._") or "_" for p in stem.split("/")]
    return "__".join(parts) if stem not in ("", ".") else "volume"


def discover_volumes(root: str | os.PathLike[str]) -> list[VolumeSource]:
    """Every input below ``root``: DICOM folders at any depth, ``.zip`` archives, NIfTI / NRRD / MHA files.

    A folder counts as DICOM when it directly holds a readable DICOM file; only its own files belong to
    it (sub-folders are their own inputs). ``root`` may also be one file or zip. Names are the relative
    path without suffix, ``/`` replaced by ``__``, other unsafe characters by ``_``; made unique.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "a" / "b").mkdir(parents=True)
        >>> (root / "a" / "b" / "ct.nii.gz").write_bytes(b"x")
        1
        >>> [(s.kind, s.rel, s.name) for s in discover_volumes(root)]
        [('image', 'a/b/ct.nii.gz', 'a__b__ct')]
    """
    from ctlens.io.dicom_headers import dicom_folders

    base = Path(root)
    if not base.exists():
        raise InputNotFoundError("no such file or folder", path=base, hint="pass the folder holding the volumes")
    if base.is_file():
        kind = "zip" if base.suffix.lower() == ".zip" else "image" if _is_volume_file(base) else "dicom"
        files = (base,) if kind == "dicom" else ()
        return [VolumeSource(kind, base, base.name, _name_of(base.name), files)]
    sources: list[VolumeSource] = []
    for path in sorted(base.rglob("*")):
        if path.is_file() and (path.suffix.lower() == ".zip" or _is_volume_file(path)):
            rel = path.relative_to(base).as_posix()
            kind = "zip" if path.suffix.lower() == ".zip" else "image"
            sources.append(VolumeSource(kind, path, rel, _name_of(rel)))
    for folder in dicom_folders(base):
        files = tuple(
            p
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() != ".zip" and not _is_volume_file(p) and not _is_document(p)
        )
        rel = folder.relative_to(base).as_posix()
        sources.append(VolumeSource("dicom", folder, rel, _name_of(rel if rel != "." else base.name), files))
    seen: dict[str, int] = {}
    unique = []
    for src in sorted(sources, key=lambda s: s.rel):
        count = seen.get(src.name, 0) + 1
        seen[src.name] = count
        unique.append(
            src if count == 1 else VolumeSource(src.kind, src.path, src.rel, f"{src.name}__{count}", src.files)
        )
    return unique


def _is_volume_file(path: Path) -> bool:
    return path.name.lower().endswith(_VOLUME_SUFFIXES)


def _is_document(path: Path) -> bool:
    from ctlens.io.dicom_reader import DOCUMENT_SUFFIXES

    name = path.name.lower()
    return name.startswith(_SKIP_NAMES) or name.endswith(DOCUMENT_SUFFIXES)


# --------------------------------------------------------------------------------------------------------------
# worker side


@dataclass
class _Result:
    name: str
    source: str
    array: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def _short_reason(exc: BaseException) -> str:
    if isinstance(exc, CTLensError):
        text = exc.reason + (f" ({exc.hint})" if exc.hint else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _row(volume: Volume, mode_reason: str) -> dict[str, Any]:
    meta = volume.meta
    return {
        "modality": volume.modality,
        "mode_reason": mode_reason,
        "manufacturer": meta.get("manufacturer", ""),
        "model": meta.get("model", ""),
        "kernel": meta.get("kernel", ""),
        "body_part": meta.get("body_part", ""),
        "slice_thickness": meta.get("slice_thickness", ""),
        "kvp": meta.get("kvp", ""),
        "tube_current_ma": meta.get("tube_current_ma", ""),
        "gantry_tilt_deg": meta.get("gantry_tilt_deg", ""),
        "tilt_corrected": meta.get("tilt_corrected", ""),
        "resampled_equidistant": meta.get("resampled_equidistant", ""),
        "study_uid_hash": meta.get("study_uid", ""),
        "series_uid_hash": meta.get("series_uid", ""),
        "warnings": "; ".join(str(w) for w in meta.get("warnings", []) or []),
    }


def _prepare_one(volume: Volume, name: str, source: str, params: dict[str, Any]) -> _Result:
    from ctlens.preprocess.mode import detect_mode

    result = _Result(name, source)
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


def _export_source(src: VolumeSource, params: dict[str, Any]) -> list[_Result]:
    """Load and prepare every volume of one source (runs in a worker process)."""
    from ctlens.io.loader import load

    options = {"uneven": "resample", "tilt": "correct"}
    try:
        if src.kind == "image":
            return [_prepare_one(load(src.path), src.name, src.rel, params)]
        from ctlens.io.dicom_reader import list_series

        target: Any = list(src.files) if src.kind == "dicom" else src.path
        series = list_series(target)
        if not series:
            return [_Result(src.name, src.rel, reason="no DICOM series found")]
    except Exception as exc:  # noqa: BLE001 -- every failure is recorded with its reason, never stops the export
        return [_Result(src.name, src.rel, reason=_short_reason(exc))]
    results = []
    for info in series:
        name = src.name if len(series) == 1 else f"{src.name}__s{info.index}"
        source = src.rel if len(series) == 1 else f"{src.rel}#series{info.index}"
        try:
            results.append(_prepare_one(load(target, series=info.index, **options), name, source, params))
        except Exception as exc:  # noqa: BLE001
            results.append(_Result(name, source, reason=_short_reason(exc)))
    return results


def _init_worker() -> None:
    """Worker set-up: one ITK thread each (the processes give the parallelism); reader warnings go to the CSV."""
    import logging

    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    logging.getLogger("ctlens").setLevel(logging.ERROR)


# --------------------------------------------------------------------------------------------------------------
# parent side


def hashed_name(source: str, salt: str) -> str:
    """The dataset name of ``source`` (its path relative to the input, ``#series<k>`` included) when hashed.

    ``sha256(salt + "\\0" + source)``, first :data:`HASH_HEX_CHARS` hex characters. The salt is a secret
    (random per export unless given) so that the name cannot be checked against guessed folder names
    (an unsalted hash of ``Doe_Jane/CT`` or of a 7-digit record number is reversed by trying them all).

    Example:
        >>> hashed_name("Lung_Dx-A0002/series_B40f_8mm", salt="s3cret")
        '7ba495829d415971'
        >>> hashed_name("Lung_Dx-A0002/series_B40f_8mm", salt="other")
        '93b1c134ac7f88d2'
    """
    return hashlib.sha256(f"{salt}\0{source}".encode()).hexdigest()[:HASH_HEX_CHARS]


def names_csv_path(output: str | os.PathLike[str]) -> Path:
    """Default local name -> source CSV of a hashed export: ``volumes.h5`` -> ``volumes.names.csv``.

    Example:
        >>> names_csv_path("out/volumes.h5").as_posix()
        'out/volumes.names.csv'
    """
    out = Path(output)
    return out.with_name(f"{out.stem}.names.csv")


def _scrub(text: str, words: Sequence[str]) -> str:
    """``text`` with every non-empty string of ``words`` (longest first) replaced by ``<hidden>``."""
    for word in sorted({w for w in words if w}, key=len, reverse=True):
        text = text.replace(word, "<hidden>")
    return text


def _stale_temps(dest: Path) -> list[Path]:
    """Leftovers of :func:`ctlens.io.files.atomic_output` for ``dest``: ``.<name>.<random>.tmp`` next to it."""
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.[A-Za-z0-9_]+\.tmp$")
    return sorted(p for p in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp") if pattern.match(p.name))


@contextlib.contextmanager
def _export_lock(dest: Path) -> Iterator[int]:
    """Hold ``.<name>.lock`` next to ``dest`` (``flock``, released by the OS even when the process is killed).

    While it is held no other export writes ``dest``, so every ``.<name>.*.tmp`` left there belongs to a
    dead export and is removed. Yields the number removed. The lock file is removed on exit; the inode
    check after locking handles a file removed by the previous holder between our open and our lock.
    """
    import fcntl

    path = dest.parent / f".{dest.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise CacheBusyError(
                f"another export is writing this file (process {holder or 'unknown'})",
                path=dest,
                hint="wait for it to finish or choose another output path",
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        removed = 0
        for stale in _stale_temps(dest):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed += 1
        yield removed
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@dataclass
class ExportReport:
    """What :func:`export_hdf5` did: names written, failures ``(name, source, reason)``, wall time.

    ``names_csv``: the local name -> source CSV of a hashed export (``None`` with ``name_mode="path"``);
    ``stale_removed``: temporary files of killed earlier exports to the same files that were removed.
    """

    output: Path
    written: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    names_csv: Path | None = None
    stale_removed: int = 0


def _write_dataset(h5: Any, result: _Result, compression: str | None) -> None:
    ds = h5.create_dataset(result.name, data=result.array, compression=compression)
    for key, value in result.attrs.items():
        ds.attrs[key] = np.asarray(value) if isinstance(value, tuple | np.ndarray) else value


def _csv_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return _fmt(value)
    return value


def export_hdf5(
    inputs: str | os.PathLike[str],
    output: str | os.PathLike[str],
    metadata_csv: str | os.PathLike[str] | None = None,
    target_shape: Sequence[int] = (160, 224, 224),
    num_workers: int = 4,
    slice_order: SliceOrder = "b2u",
    hu_clip: Sequence[float] = (-1000.0, 1000.0),
    *,
    ct_only: bool = True,
    compression: str | None = None,
    progress: bool | ProgressCallback = True,
    name_mode: NameMode = "path",
    hash_salt: str | None = None,
    names_csv: str | os.PathLike[str] | None = None,
) -> ExportReport:
    """Export every volume below ``inputs`` into the HDF5 file ``output`` (format: ``docs/hdf5_export.md``).

    * ``num_workers`` processes prepare the volumes (0 or 1: in this process); only this process writes;
    * ``output`` (and ``metadata_csv``: one row per volume, see :data:`METADATA_COLUMNS`) appear only when
      complete (temporary file, then rename); temporary files that a killed earlier export to the same
      files left behind are removed first (an exclusive ``.<name>.lock`` next to each file tells that no
      live export owns them; a second export to the same file meanwhile raises ``CacheBusyError``);
    * a volume that cannot be read or prepared (unreadable, empty, one slice, not CT when ``ct_only``) is
      recorded -- in the report, the CSV (``status=failed``) and the root attribute ``failures`` -- and
      skipped;
    * ``compression``: ``None`` (fastest to read), ``"lzf"`` or ``"gzip"``;
    * ``name_mode="hash"``: datasets are named :func:`hashed_name` of their relative path with a secret salt
      (``hash_salt``, random when ``None``); paths are kept out of the HDF5 file and the metadata CSV, and
      the name -> source mapping goes to ``names_csv`` (default :func:`names_csv_path`), a file to keep
      locally.

    Example:
        >>> import tempfile, pathlib, h5py, numpy as np, ctlens
        >>> tmp = pathlib.Path(tempfile.mkdtemp()); ct = np.full((6, 16, 16), -1000, np.int16); ct[:, 4:12, 4:12] = 50
        >>> ctlens.save(ctlens.Volume(ct, spacing=(3.0, 1.0, 1.0)), tmp / "ct.nii.gz")
        >>> report = export_hdf5(tmp, tmp / "v.h5", target_shape=(16, 16, 16), num_workers=0, progress=False)
        >>> report.written, h5py.File(tmp / "v.h5")["ct"].shape
        (['ct'], (16, 16, 16))
    """
    import h5py

    from ctlens.io.files import atomic_output

    start = time.perf_counter()
    shape, lo, hi = _check_args(target_shape, slice_order, hu_clip)
    if compression not in (None, "lzf", "gzip"):
        raise ValueError(f"compression must be None, 'lzf' or 'gzip', got {compression!r}")
    if name_mode not in ("path", "hash"):
        raise ValueError(f"name_mode must be 'path' or 'hash', got {name_mode!r}")
    hidden = name_mode == "hash"
    salt = (hash_salt or secrets.token_hex(16)) if hidden else ""
    names_file = (Path(names_csv) if names_csv is not None else names_csv_path(output)) if hidden else None
    params = {"target_shape": shape, "slice_order": slice_order, "hu_clip": (lo, hi), "ct_only": ct_only}
    targets = [Path(t) for t in (output, metadata_csv, names_file) if t is not None]
    for target_file in targets:
        if not target_file.parent.is_dir():
            raise InputNotFoundError(
                f"cannot write: the folder {str(target_file.parent)!r} does not exist",
                path=target_file,
                hint="create the folder first or choose another output path",
            )
    if len({t.resolve() for t in targets}) < len(targets):
        raise ValueError(f"output, metadata_csv and names_csv must be different files, got {targets}")
    sources = discover_volumes(inputs)
    if not sources:
        raise InputNotFoundError(
            "no volumes found (DICOM folders, .zip, .nii/.nii.gz, .nrrd, .mha/.mhd)",
            path=inputs,
            hint="check the folder",
        )
    base = Path(inputs)
    roots = sorted({str(base), str(base.absolute()), str(base.resolve())}, key=len, reverse=True)

    def local(text: str) -> str:
        """``text`` with the input folder's absolute path cut to a relative one (true in both name modes)."""
        for root in roots:
            text = text.replace(root + os.sep, "").replace(root, ".")
        return text

    def private(text: str, res: _Result) -> str:
        """``local(text)``, and with ``name_mode="hash"`` the source's path, folder and file names hidden."""
        text = local(text)
        if not hidden:
            return text
        rel = res.source.rsplit("#series", 1)[0]
        parts = [p for p in rel.split("/") if len(p) >= 3]
        return _scrub(text, [rel, res.source, res.name, *parts, *(_name_of(p) for p in parts)])

    report = ExportReport(Path(output), names_csv=names_file)
    rows: list[dict[str, Any]] = []
    names_rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as locks:
        report.stale_removed = sum(locks.enter_context(_export_lock(t)) for t in targets)
        with atomic_output(output) as tmp:
            with h5py.File(tmp, "w") as h5:
                h5.attrs.update(
                    {
                        "format": FORMAT_NAME,
                        "format_version": FORMAT_VERSION,
                        "target_shape": np.asarray(shape),
                        "slice_order": slice_order,
                        "hu_clip": np.asarray((lo, hi)),
                        "axcodes": "SAR" if slice_order == "b2u" else "IAR",
                        "nifti_axcodes": _NIFTI_CODES[slice_order],
                        "value_to_hu": np.asarray(((hi - lo) / 255.0, lo)),
                        "name_mode": name_mode,
                    }
                )
                public_failures: list[dict[str, str]] = []

                def consume(results: list[_Result]) -> None:
                    for res in results:
                        name = hashed_name(res.source, salt) if hidden else res.name
                        row = {"name": name, "source": "" if hidden else res.source, **res.row}
                        row["warnings"] = private(str(row.get("warnings", "")), res)
                        if res.array is not None and name not in h5:
                            attrs = {k: v for k, v in res.attrs.items() if not (hidden and k == "source")}
                            _write_dataset(h5, _Result(name, "", res.array, attrs), compression)
                            report.written.append(name)
                            row.update(status="ok", reason="")
                            row.update({k: _csv_value(res.attrs[k]) for k in ("original_shape", "original_spacing")})
                            row.update({k: _csv_value(res.attrs[k]) for k in ("resized_shape", "spacing")})
                        else:
                            reason = local(res.reason or f"duplicate volume name {name!r}")
                            report.failures.append((name, res.source, reason))
                            row.update(status="failed", reason=private(reason, res))
                            public_failures.append({"name": name, "source": row["source"], "reason": row["reason"]})
                        rows.append(row)
                        if hidden:
                            names_rows.append(
                                {"name": name, "source": res.source, "status": row["status"], "salt": salt}
                                | {"reason": "" if row["status"] == "ok" else report.failures[-1][2]}
                            )

                with _progress_bar(progress, len(sources)) as advance:
                    if num_workers <= 1:
                        for src in sources:
                            consume(_export_source(src, params))
                            advance("" if hidden else src.rel)  # hashed names: no path on screen
                    else:
                        ctx = multiprocessing.get_context("spawn")
                        with cf.ProcessPoolExecutor(num_workers, mp_context=ctx, initializer=_init_worker) as pool:
                            futures = {pool.submit(_export_source, src, params): src for src in sources}
                            for future in cf.as_completed(futures):
                                src = futures[future]
                                try:
                                    results = future.result()
                                except Exception as exc:  # noqa: BLE001 -- a crashed worker fails only its input
                                    reason = f"worker failed: {_short_reason(exc)}"
                                    results = [_Result(src.name, src.rel, reason=reason)]
                                consume(results)
                                advance("" if hidden else src.rel)  # hashed names: no path on screen
                h5.attrs["n_volumes"] = len(report.written)
                h5.attrs["failures"] = json.dumps(public_failures)
            # the CSVs land before the HDF5 file: a hashed export never exists without its name mapping
            if names_file is not None:
                _write_csv(names_file, NAMES_COLUMNS, names_rows)
            if metadata_csv is not None:
                _write_csv(Path(metadata_csv), METADATA_COLUMNS, rows)
    report.written.sort()
    report.seconds = time.perf_counter() - start
    return report


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    from ctlens.io.files import atomic_output

    with atomic_output(path) as tmp_csv, open(tmp_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["name"]):
            writer.writerow({k: row.get(k, "") for k in columns})


@contextlib.contextmanager
def _progress_bar(enabled: bool | ProgressCallback, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar over the sources, a progress callback, or nothing; yields ``advance(description)``."""
    if callable(enabled):
        callback, done = enabled, 0
        callback(0, total)

        def advance(desc: str) -> None:
            nonlocal done
            done += 1
            if desc:
                announce(callback, str(desc)[-60:])
            callback(done, total)

        yield advance
        return
    if not enabled:
        yield lambda _desc: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]HDF5 export"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, TextColumn("{task.description}")) as bar:
        task = bar.add_task("", total=total)
        yield lambda desc: bar.update(task, advance=1, description=str(desc)[-60:])
