"""NIfTI-1/-2 (``.nii``, ``.nii.gz``) reading and writing with nibabel.

NIfTI stores arrays ``[x, y, z]`` with a RAS affine; a :class:`~ctlens.core.volume.Volume` is ``[z, y, x]``
in LPS. All geometry conversion goes through :mod:`ctlens.io.lps_ras`. A 4-D file (``[x, y, z, t]``: time
points, diffusion directions, as dcm2niix and ``ctlens convert`` write them) is read volume by volume
(:func:`read_nifti` with ``volume=k``, :func:`read_nifti_volumes`), with the FSL ``.bval`` / ``.bvec`` beside it
(:func:`ctlens.io.fsl_gradients.read_gradients`).

Also home of :func:`guess_modality`, which the other file formats share (files are written with
:func:`ctlens.io.files.atomic_output`).

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ct.nii.gz"
    >>> write_nifti(Volume(np.full((2, 3, 4), -1000, np.int16), spacing=(3, 1, 1)), path)
    >>> read_nifti(path)
    Volume(shape=(2, 3, 4), dtype=int16, spacing=(3, 1, 1) mm, modality='CT')
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import nibabel.openers
import numpy as np
from nibabel.volumeutils import apply_read_scaling, array_from_file

from ctlens.core.errors import CorruptFileError, CTLensError, SeriesSelectionError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io.files import MAX_DEFLATE_RATIO, atomic_output, check_readable
from ctlens.io.fsl_gradients import read_gradients
from ctlens.io.lps_ras import nifti_affine, volume_geometry_from_nifti_affine
from ctlens.io.nifti_extensions import check_extensions
from ctlens.io.suffixes import NIFTI_SUFFIXES

__all__ = [
    "check_voxel_bytes",
    "guess_modality",
    "nibabel_quiet",
    "read_nifti",
    "read_nifti_volumes",
    "write_nifti",
]

log = logging.getLogger(__name__)

_QUIET = threading.local()


class _QuietFilter(logging.Filter):
    """Drops nibabel's header-check messages while this thread reads a file (the reader reports the reason)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_QUIET, "on", False)


logging.getLogger("nibabel.global").addFilter(_QuietFilter())


@contextlib.contextmanager
def nibabel_quiet() -> Iterator[None]:
    """Silence nibabel's own log lines ("data code 32767 not recognized", ...) in this thread for the block.

    They would show as extra ``ctlens: error:`` lines next to the one error ctlens raises with the same reason.

    Example:
        >>> with nibabel_quiet():
        ...     logging.getLogger("nibabel.global").error("not shown")
    """
    before = getattr(_QUIET, "on", False)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = before


_MODALITY_TAG = re.compile(r"^ctlens modality=([A-Z]{2,8})$")
"""The only ``descrip`` text read back: the tag :func:`write_nifti` writes (anything else may identify)."""

_UNIT_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001, "unknown": 1.0}


# --------------------------------------------------------------------------------------------------------------
# shared helpers


def guess_modality(array: np.ndarray) -> str:
    """Guess ``"CT"``, ``"SEG"`` or ``"MR"`` from voxel values alone (files without a modality field).

    Heuristic, in order:

    * ``"CT"``: values look like Hounsfield units: the minimum is at or below -500 (air is -1000, padding
      down to -32768) and the maximum is at least 0 (water), all within the int16 range.
    * ``"SEG"``: a label map: integer voxels from 0 to at most 255 taking at most 128 distinct values.
    * ``"MR"``: anything else (non-negative or normalised intensities).

    Callers who know better pass the modality explicitly.

    Example:
        >>> import numpy as np
        >>> [guess_modality(np.array(values)) for values in ([-1024, 0, 40], [0, 1, 5], range(900))]
        ['CT', 'SEG', 'MR']
    """
    arr = np.asarray(array)
    if arr.size == 0 or arr.dtype.kind not in "biuf":
        return "MR"
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)] if not np.all(np.isfinite(arr)) else arr
        if finite.size == 0:
            return "MR"
        lo, hi = float(finite.min()), float(finite.max())
    else:
        lo, hi = float(arr.min()), float(arr.max())
    if -32768 <= lo <= -500 and 0 <= hi <= 32767:
        return "CT"
    if arr.dtype.kind in "biu" and lo >= 0 and hi <= 255:
        counts = np.zeros(256, dtype=np.int64)
        flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)
        for row in flat:  # one slice at a time: bounded memory for large volumes
            counts += np.bincount(row.astype(np.intp, copy=False), minlength=256)[:256]
        if np.count_nonzero(counts) <= 128:
            return "SEG"
    return "MR"


def _nifti_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(NIFTI_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)


# --------------------------------------------------------------------------------------------------------------
# reading


def _load_error_reason(exc: Exception) -> str:
    text = str(exc)
    if "Cannot work out file type" in text or "not a valid" in text.lower():
        return "not a NIfTI file (no valid NIfTI-1 or NIfTI-2 header)"
    if "not a gzip" in text.lower():
        return "not gzip-compressed although the name ends in .gz"
    if isinstance(exc, EOFError) or "ended before" in text or "truncated" in text.lower() or "Expected " in text:
        return "truncated file (the data ends early)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"unreadable NIfTI file ({first})"


@dataclass
class _Opened:
    """A checked NIfTI file, before any voxel is read: what every volume of it shares."""

    path: Path
    img: Any
    grid: tuple[int, int, int]
    """Voxels per volume along NIfTI's x, y, z."""
    n_volumes: int
    geometry: tuple[Any, Any, Any]
    """spacing, origin, direction (LPS) of every volume."""
    meta: dict[str, Any]
    gradients: tuple[list[float], np.ndarray] | None
    tag: str | None
    """The modality :func:`write_nifti` tagged the file with."""


def _open(path: Path) -> _Opened:
    """Load the header, refuse what cannot be read (before any voxel is read), read geometry and gradients."""
    check_readable(path, "NIfTI")
    suffix = _nifti_suffix(path)
    if suffix is None:
        raise UnsupportedFormatError(
            "not a NIfTI file name (expected .nii or .nii.gz)",
            path=path,
            hint="rename the file or use the reader for its format",
        )
    check_extensions(path)
    try:
        with nibabel_quiet():
            img = nib.load(path, mmap=False)
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, ValueError, zlib.error ...
        raise CorruptFileError(_load_error_reason(exc), path=path, hint="re-export or re-download the file") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise UnsupportedFormatError(
            f"{type(img).__name__} is not NIfTI", path=path, hint="convert it to .nii or .nii.gz first"
        )
    header = img.header
    shape = tuple(int(n) for n in img.shape)
    file_dtype = header.get_data_dtype()
    if file_dtype.kind not in "biuf" or file_dtype.fields is not None:
        raise UnsupportedFormatError(
            f"voxel type {file_dtype} (RGB, complex or structured) is not supported",
            path=path,
            hint="convert the image to one scalar channel",
        )
    if len(shape) < 2:
        raise UnsupportedFormatError(f"{len(shape)}-D image of shape {shape}", path=path, hint="store 2-D or 3-D data")
    if min(shape) < 1:
        raise CorruptFileError(f"invalid image shape {shape}", path=path, hint="re-export the file")
    if len(shape) > 4 and any(n != 1 for n in shape[4:]):
        raise UnsupportedFormatError(
            f"{len(shape)}-D image of shape {shape}: dimensions past the 4th (vectors, tensors, echoes) are not "
            "supported",
            path=path,
            hint="store scalar 3-D volumes, or several along the 4th dimension",
        )
    _check_size(path, img, suffix, shape, file_dtype)

    affine = np.array(img.affine, dtype=np.float64)
    try:
        space_unit = header.get_xyzt_units()[0]
    except KeyError:  # nibabel knows only the unit codes of the standard
        raise CorruptFileError(
            f"invalid xyzt_units code {int(header['xyzt_units'])}", path=path, hint="fix the header's units field"
        ) from None
    affine[:3, :] *= _UNIT_TO_MM.get(space_unit, 1.0)
    try:
        geometry = volume_geometry_from_nifti_affine(affine)
    except ValueError as exc:
        raise CorruptFileError(f"invalid geometry: {exc}", path=path, hint="fix the file's sform/qform") from exc
    grid = (*shape[:3], 1, 1)[:3]
    n_volumes = shape[3] if len(shape) > 3 else 1

    # nibabel moves scl_slope / scl_inter from the header into the data proxy on load
    slope, inter = float(getattr(img.dataobj, "slope", 1.0)), float(getattr(img.dataobj, "inter", 0.0))
    qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
    meta: dict[str, Any] = {
        "source_format": "nifti",
        "nifti_version": 2 if isinstance(img, nib.Nifti2Image) else 1,
        "compressed": suffix == ".nii.gz",
        "dtype": str(file_dtype),
        "scaled": not (slope == 1.0 and inter == 0.0),
        "qform_code": qform_code,
        "sform_code": sform_code,
        "affine_source": "sform" if sform_code > 0 else "qform" if qform_code > 0 else "pixdim",
        "n_volumes": n_volumes,
    }
    if space_unit not in ("mm", "unknown"):
        meta["spatial_unit_in_file"] = space_unit
    tag = _MODALITY_TAG.match(header["descrip"].item().decode("ascii", "replace").strip())
    gradients = read_gradients(path, n_volumes, affine)
    return _Opened(path, img, grid, n_volumes, geometry, meta, gradients, tag.group(1) if tag else None)


def _arrays(opened: _Opened, indices: Sequence[int]) -> Iterator[np.ndarray]:
    """Volumes ``indices`` (ascending) as ``[z, y, x]`` arrays, read one after the other from one open file.

    NIfTI stores ``[x, y, z, t]`` in Fortran order, so each volume is one contiguous block: only the blocks asked
    for are held in memory (a ``.nii.gz`` is decompressed up to the last of them).
    """
    img, path = opened.img, opened.path
    dtype = img.header.get_data_dtype()
    offset = int(img.dataobj.offset)  # the header nibabel hands out may say 0; the proxy knows
    block = int(np.prod(opened.grid)) * dtype.itemsize
    # nibabel's read scaling, with the scale factors cast as get_fdata(dtype=float32) casts them
    slope, inter = np.asanyarray(img.dataobj.slope), np.asanyarray(img.dataobj.inter)
    identity = float(slope) == 1.0 and float(inter) == 0.0
    slope = slope.astype(np.float32) if np.can_cast(slope, np.float32) else slope
    inter = inter.astype(np.float32) if np.can_cast(inter, np.float32) else inter
    try:
        with nib.openers.ImageOpener(path, "rb") as fobj:
            for k in indices:
                raw = array_from_file(opened.grid, dtype, fobj, offset + k * block, order="F", mmap=False)
                data = raw if identity else apply_read_scaling(raw, slope, inter).astype(np.float32, copy=False)
                yield np.ascontiguousarray(data.transpose(2, 1, 0))
    except CTLensError:
        raise
    except Exception as exc:  # OSError (short data), EOFError / zlib.error (truncated or corrupt gzip)
        raise CorruptFileError(_load_error_reason(exc), path=path, hint="re-export or re-download the file") from exc


def _volume(opened: _Opened, k: int, array: np.ndarray, modality: str | None) -> Volume:
    """Volume ``k`` of the file from its voxels: geometry, modality, volume and gradient facts in ``meta``."""
    meta = {**opened.meta, "volume_index": k}
    if opened.gradients is not None:
        bvals, bvecs = opened.gradients
        meta["bvals"] = list(bvals)
        meta["bvecs"] = bvecs.tolist()
        meta["diffusion_bvalue"] = bvals[k]
        meta["diffusion_gradient"] = meta["bvecs"][k]
    if modality is not None:
        meta["modality_source"] = "caller"
    elif opened.tag:
        modality, meta["modality_source"] = opened.tag, "file"
    else:
        modality, meta["modality_source"] = guess_modality(array), "heuristic"
    spacing, origin, direction = opened.geometry
    return Volume(array, spacing=spacing, origin=origin, direction=direction, modality=modality, meta=meta)


def read_nifti(path: str | Path, *, modality: str | None = None, volume: int | None = None) -> Volume:
    """Read a ``.nii`` / ``.nii.gz`` file into a :class:`Volume` (array ``[z, y, x]``, LPS geometry).

    * Data are transposed from NIfTI's ``[x, y, z]``. A 4-D file (time points, diffusion directions) holds
      ``meta['n_volumes']`` volumes: ``volume=k`` (0-based) reads volume ``k`` alone, from its own bytes; without
      ``volume`` volume 0 is read with a warning (:func:`read_nifti_volumes` reads all). Files with more than
      four dimensions are refused with :class:`~ctlens.core.errors.UnsupportedFormatError`.
    * FSL ``.bval`` / ``.bvec`` files beside it (as dcm2niix and ``ctlens convert`` write them) give
      ``meta['bvals']`` and ``meta['bvecs']`` (directions in LPS, :func:`ctlens.io.fsl_gradients.read_gradients`).
    * Integer (or float) dtypes are kept when ``scl_slope`` / ``scl_inter`` are identity; otherwise the
      scaled values are returned as float32.
    * Geometry comes from nibabel's best affine (sform, else qform, else voxel sizes); spatial units in
      metres or microns are converted to mm.
    * ``modality``: taken from the argument, else from the tag :func:`write_nifti` writes, else from
      :func:`guess_modality`. ``meta['modality_source']`` says which.
    * ``meta`` holds only non-identifying facts (format, NIfTI version, compression, file dtype, scaling,
      qform/sform codes, affine source, volume count and index). The free-text ``descrip`` / ``aux_file``
      fields, which may hold patient identifiers, are dropped.

    Empty, truncated or non-NIfTI files, and gradient files that do not fit, raise
    :class:`~ctlens.core.errors.CorruptFileError`.

    Example:
        >>> import tempfile, pathlib
        >>> import nibabel as nib, numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.nii"
        >>> nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), path)
        >>> v = read_nifti(path)
        >>> v.shape, int(v.array[3, 2, 1]), v.modality, v.meta["source_format"]  # voxel x=1, y=2, z=3
        ((4, 3, 2), 23, 'SEG', 'nifti')
    """
    opened = _open(Path(path))
    n = opened.n_volumes
    warning = None
    if volume is None:
        volume = 0
        if n > 1:
            warning = (
                f"holds {n} volumes (time points, diffusion directions...): read volume 0; pass volume=k (0-based) "
                "for another, or use ctlens.io.load_volumes for all"
            )
            log.warning("%s: %s", path, warning)
    elif isinstance(volume, bool) or not isinstance(volume, (int, np.integer)) or not 0 <= volume < n:
        raise SeriesSelectionError(
            f"volume={volume!r} is not a volume of this file, which holds {n}",
            path=path,
            hint=f"pass volume=0 .. {n - 1}",
        )
    k = int(volume)
    (array,) = _arrays(opened, [k])
    result = _volume(opened, k, array, modality)
    if warning:
        result.meta["warnings"] = [warning]
    return result


def read_nifti_volumes(path: str | Path, *, modality: str | None = None) -> list[Volume]:
    """Every volume of a ``.nii`` / ``.nii.gz`` file in order (one for a 3-D file), reading the file once.

    Volume ``k`` equals ``read_nifti(path, modality=modality, volume=k)``.

    Example:
        >>> import tempfile, pathlib
        >>> import nibabel as nib, numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "bold.nii.gz"
        >>> nib.save(nib.Nifti1Image(np.arange(48, dtype=np.int16).reshape(2, 3, 4, 2), np.eye(4)), path)
        >>> [(v.shape, v.meta["volume_index"], int(v.array[0, 0, 1])) for v in read_nifti_volumes(path)]
        [((4, 3, 2), 0, 24), ((4, 3, 2), 1, 25)]
    """
    opened = _open(Path(path))
    indices = range(opened.n_volumes)
    return [_volume(opened, k, array, modality) for k, array in zip(indices, _arrays(opened, indices), strict=True)]


def check_voxel_bytes(path: str | Path, img: Any) -> None:
    """Refuse a loaded NIfTI image whose header declares more voxel bytes than ``path`` can hold (before reading).

    Example:
        >>> import tempfile, pathlib, nibabel as nib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.nii"
        >>> nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), p)
        >>> check_voxel_bytes(p, nib.load(p))
    """
    path = Path(path)
    suffix = _nifti_suffix(path) or ".nii"
    _check_size(path, img, suffix, tuple(int(n) for n in img.shape), img.header.get_data_dtype())


def _check_size(path: Path, img: Any, suffix: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse headers that claim more voxel data than the file can hold (truncated files, bombs)."""
    needed = math.prod(shape) * dtype.itemsize  # Python integers: np.prod wraps a NIfTI-2 shape past 2^63
    # the proxy knows where the data start; the header nibabel hands out may say 0
    offset = int(getattr(img.dataobj, "offset", img.header.get_data_offset()))
    size = path.stat().st_size
    if suffix == ".nii" and offset + needed > size:
        raise CorruptFileError(
            f"truncated file: the header needs {offset + needed} bytes, the file has {size}",
            path=path,
            hint="re-export or re-download the file",
        )
    if suffix == ".nii.gz" and needed > MAX_DEFLATE_RATIO * size:
        raise CorruptFileError(
            f"truncated or corrupt file: the header claims {needed} bytes of voxels, more than {size} "
            "compressed bytes can hold",
            path=path,
            hint="re-export or re-download the file",
        )


# --------------------------------------------------------------------------------------------------------------
# writing


def _writable_array(volume: Volume, path: Path) -> np.ndarray:
    arr = volume.array
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    if arr.dtype.kind not in "iuf":
        raise UnsupportedFormatError(
            f"cannot store voxel type {arr.dtype} in NIfTI", path=path, hint="convert the array to int or float"
        )
    return arr


def write_nifti(volume: Volume, path: str | Path) -> None:
    """Write ``volume`` to ``path`` (``.nii`` or ``.nii.gz``) atomically, with the correct RAS affine.

    The array is stored ``[x, y, z]`` in its own dtype (bool as uint8, float16 as float32), without scaling;
    sform and qform are both set (code 1, scanner) from :func:`ctlens.io.lps_ras.nifti_affine` (the qform
    cannot hold shear; the sform is exact to float32), units are mm, and ``descrip`` holds only
    ``"ctlens modality=<MODALITY>"``. NIfTI-2 is used only when a dimension exceeds NIfTI-1's 32767.
    The file appears complete or not at all (see :func:`ctlens.io.files.atomic_output`).

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "seg.nii"
        >>> write_nifti(Volume(np.zeros((1, 2, 2), bool), modality="SEG"), path)
        >>> v = read_nifti(path)
        >>> v.array.dtype, v.modality, v.meta["modality_source"]
        (dtype('uint8'), 'SEG', 'file')
    """
    path = Path(path)
    if _nifti_suffix(path) is None:
        raise UnsupportedFormatError(
            "a NIfTI file name must end in .nii or .nii.gz", path=path, hint="choose a .nii or .nii.gz path"
        )
    arr = _writable_array(volume, path)
    affine = nifti_affine(volume)
    image_class = nib.Nifti2Image if max(arr.shape) > 32767 else nib.Nifti1Image
    img = image_class(arr.transpose(2, 1, 0), affine, dtype=arr.dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    header = img.header
    header.set_xyzt_units("mm", "sec")
    modality = str(volume.modality or "")
    header["descrip"] = f"ctlens modality={modality}" if re.fullmatch(r"[A-Z]{2,8}", modality) else "ctlens"
    with atomic_output(path) as tmp:
        try:
            nib.save(img, tmp)
        except OSError:
            raise  # atomic_output reports it
        except Exception as exc:  # nibabel HeaderDataError / ValueError for values it cannot store
            raise UnsupportedFormatError(
                f"cannot write NIfTI: {exc}", path=path, hint="convert the array or geometry"
            ) from exc
