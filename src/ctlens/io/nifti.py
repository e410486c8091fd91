"""NIfTI-1/-2 (``.nii``, ``.nii.gz``) reading and writing with nibabel.

NIfTI stores arrays ``[x, y, z]`` with a RAS affine; a :class:`~ctlens.core.volume.Volume` is ``[z, y, x]``
in LPS. All geometry conversion goes through :mod:`ctlens.io.lps_ras`.

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
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ctlens.core.errors import CorruptFileError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io.files import MAX_DEFLATE_RATIO, atomic_output, check_readable
from ctlens.io.lps_ras import nifti_affine, volume_geometry_from_nifti_affine
from ctlens.io.suffixes import NIFTI_SUFFIXES

__all__ = ["check_voxel_bytes", "guess_modality", "nibabel_quiet", "read_nifti", "write_nifti"]

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
    if isinstance(exc, EOFError) or "ended before" in text or "truncated" in text.lower():
        return "truncated file (the data ends early)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"unreadable NIfTI file ({first})"


def read_nifti(path: str | Path, *, modality: str | None = None) -> Volume:
    """Read a ``.nii`` / ``.nii.gz`` file into a :class:`Volume` (array ``[z, y, x]``, LPS geometry).

    * Data are transposed from NIfTI's ``[x, y, z]``; a 4-D file with one volume is squeezed to 3-D, other
      4-D (or higher) files are refused with :class:`~ctlens.core.errors.UnsupportedFormatError`.
    * Integer (or float) dtypes are kept when ``scl_slope`` / ``scl_inter`` are identity; otherwise the
      scaled values are returned as float32.
    * Geometry comes from nibabel's best affine (sform, else qform, else voxel sizes); spatial units in
      metres or microns are converted to mm.
    * ``modality``: taken from the argument, else from the tag :func:`write_nifti` writes, else from
      :func:`guess_modality`. ``meta['modality_source']`` says which.
    * ``meta`` holds only non-identifying facts (format, NIfTI version, compression, file dtype, scaling,
      qform/sform codes, affine source). The free-text ``descrip`` / ``aux_file`` fields, which may hold
      patient identifiers, are dropped.

    Empty, truncated or non-NIfTI files raise :class:`~ctlens.core.errors.CorruptFileError`.

    Example:
        >>> import tempfile, pathlib
        >>> import nibabel as nib, numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.nii"
        >>> nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), path)
        >>> v = read_nifti(path)
        >>> v.shape, int(v.array[3, 2, 1]), v.modality, v.meta["source_format"]  # voxel x=1, y=2, z=3
        ((4, 3, 2), 23, 'SEG', 'nifti')
    """
    path = Path(path)
    check_readable(path, "NIfTI")
    suffix = _nifti_suffix(path)
    if suffix is None:
        raise UnsupportedFormatError(
            "not a NIfTI file name (expected .nii or .nii.gz)",
            path=path,
            hint="rename the file or use the reader for its format",
        )
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
    if len(shape) > 3 and any(n != 1 for n in shape[3:]):
        raise UnsupportedFormatError(
            f"{len(shape)}-D image of shape {shape} holds {int(np.prod(shape[3:]))} volumes",
            path=path,
            hint="split it into 3-D volumes first (e.g. nibabel.funcs.four_to_three) and read one",
        )
    _check_size(path, img, suffix, shape, file_dtype)

    # nibabel moves scl_slope / scl_inter from the header into the data proxy on load
    slope, inter = float(getattr(img.dataobj, "slope", 1.0)), float(getattr(img.dataobj, "inter", 0.0))
    identity = slope == 1.0 and inter == 0.0
    try:
        if identity:
            data = np.asarray(img.dataobj.get_unscaled())
        else:
            data = img.get_fdata(dtype=np.float32)
    except Exception as exc:
        raise CorruptFileError(_load_error_reason(exc), path=path, hint="re-export or re-download the file") from exc
    data = data.reshape(shape[:3] if len(shape) >= 3 else (*shape, 1))
    array = np.ascontiguousarray(data.transpose(2, 1, 0))

    affine = np.array(img.affine, dtype=np.float64)
    try:
        space_unit = header.get_xyzt_units()[0]
    except KeyError:  # nibabel knows only the unit codes of the standard
        raise CorruptFileError(
            f"invalid xyzt_units code {int(header['xyzt_units'])}", path=path, hint="fix the header's units field"
        ) from None
    affine[:3, :] *= _UNIT_TO_MM.get(space_unit, 1.0)
    try:
        spacing, origin, direction = volume_geometry_from_nifti_affine(affine)
    except ValueError as exc:
        raise CorruptFileError(f"invalid geometry: {exc}", path=path, hint="fix the file's sform/qform") from exc

    qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
    meta: dict[str, Any] = {
        "source_format": "nifti",
        "nifti_version": 2 if isinstance(img, nib.Nifti2Image) else 1,
        "compressed": suffix == ".nii.gz",
        "dtype": str(file_dtype),
        "scaled": not identity,
        "qform_code": qform_code,
        "sform_code": sform_code,
        "affine_source": "sform" if sform_code > 0 else "qform" if qform_code > 0 else "pixdim",
    }
    if space_unit not in ("mm", "unknown"):
        meta["spatial_unit_in_file"] = space_unit
    if modality is not None:
        meta["modality_source"] = "caller"
    else:
        tag = _MODALITY_TAG.match(header["descrip"].item().decode("ascii", "replace").strip())
        if tag:
            modality, meta["modality_source"] = tag.group(1), "file"
        else:
            modality, meta["modality_source"] = guess_modality(array), "heuristic"
    return Volume(array, spacing=spacing, origin=origin, direction=direction, modality=modality, meta=meta)


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
    needed = int(np.prod(shape)) * dtype.itemsize
    offset = int(img.header.get_data_offset())
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
