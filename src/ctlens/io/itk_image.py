"""NRRD (``.nrrd``, ``.nhdr``) and MetaImage (``.mha``, ``.mhd``) reading and writing with SimpleITK.

SimpleITK already works in LPS; its ``(x, y, z)`` ordering is converted with
:meth:`Volume.from_itk_geometry <ctlens.core.volume.Volume.from_itk_geometry>` /
:meth:`Volume.itk_geometry <ctlens.core.volume.Volume.itk_geometry>`. SimpleITK's ``RuntimeError`` (a C++
traceback in text) is turned into a one-line :class:`~ctlens.core.errors.CorruptFileError`.

Before SimpleITK opens a file, ctlens reads its text header itself (:mod:`ctlens.io.detached_header`): the data
files it names must stay in the header's own folder (no absolute path, no ``..``, no link) unless the caller
trusts the file (``allow_outside=True``), and the voxel bytes it declares must fit the bytes that hold them (text
voxels: at least a digit and a separator a value). NRRD ``ascii`` voxels are scanned for a value longer than NrrdIO
reads (:data:`NRRD_MAX_TEXT_VALUE`), which would kill the process.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ct.nrrd"
    >>> write_itk_image(Volume(np.full((2, 3, 4), -1000, np.int16), spacing=(3, 1, 1)), path)
    >>> read_itk_image(path)
    Volume(shape=(2, 3, 4), dtype=int16, spacing=(3, 1, 1) mm, modality='CT')
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ctlens.core.errors import CorruptFileError, CTLensError, UnsupportedFormatError
from ctlens.core.volume import Volume, position_in_range, spacing_in_range
from ctlens.io.detached_header import HeaderInfo, check_data_files, read_header
from ctlens.io.files import MAX_DEFLATE_RATIO, atomic_output, check_readable
from ctlens.io.nifti import guess_modality
from ctlens.io.suffixes import ITK_SUFFIXES

__all__ = ["read_itk_image", "write_itk_image"]

_IMAGE_IO = {"nrrd": "NrrdImageIO", "metaimage": "MetaImageIO"}
_MODALITY_KEY = "ctlens_modality"
_META_MODALITY = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_PET": "PT", "MET_MOD_US": "US", "MET_MOD_NM": "NM"}
_COMPLEX = {sitk.sitkComplexFloat32, sitk.sitkComplexFloat64}
NRRD_MAX_TEXT_VALUE = 1024
"""Longest value NrrdIO reads from ``ascii``-encoded voxels: it scans each into a 1025-byte buffer without a
bound, so a longer run of non-space characters overwrites memory and kills the process (found by fuzzing)."""
_SPACE = b" \t\n\r\v\f"


def short_reason(exc: BaseException, path: str | Path | None = None) -> str:
    """The first meaningful line of a SimpleITK error (no C++ file names, object addresses or file path).

    Example:
        >>> msg = 'Exception thrown in sitk: /src/x.cxx:99:\\nsitk::ERROR: The file "a.mha" does not exist.'
        >>> short_reason(RuntimeError(msg), "a.mha")
        'The file does not exist.'
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = next((line.split("ERROR:", 1)[1].strip() for line in lines if "ERROR:" in line), "")
    reason = re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", reason)  # "NrrdImageIO(0x55...): "
    reason = re.sub(r"^(ReadImageInformation|Read|Write\w*):\s*", "", reason)
    details = [line for line in lines if line.startswith("[nrrd]")]
    if details:  # teem's chain of messages: the last one says what is wrong
        last = re.sub(r"^\[nrrd\]\s*\w+:\s*", "", details[-1])
        reason = f"{reason.rstrip(':')}: {last}"
    if not reason:
        reason = next((line for line in lines if not re.search(r"\.(cxx|h|hxx):\d+", line)), type(exc).__name__)
    if path is not None:
        for form in dict.fromkeys([str(path), Path(path).name]):  # full path first
            reason = reason.replace(f'"{form}"', "").replace(f"'{form}'", "").replace(form, "the file")
        reason = re.sub(r"\s{2,}", " ", reason).replace(" for.", ".").strip()
    return reason


def _format_of(path: Path) -> str | None:
    return ITK_SUFFIXES.get(path.suffix.lower())


def _format_or_error(path: Path, hint: str) -> str:
    """The format of ``path`` from its name, or an UnsupportedFormatError naming it."""
    fmt = _format_of(path)
    if fmt is None:
        raise UnsupportedFormatError(
            f"not a NRRD or MetaImage file name (expected one of {', '.join(ITK_SUFFIXES)})", path=path, hint=hint
        )
    return fmt


def _check_header(path: Path, allow_outside: bool, hint: str) -> int | None:
    """Refuse, before any library opens ``path``, data files outside its folder and impossible voxel sizes.

    Returns the most voxel bytes the stored data can hold (None when the file is not NRRD at all), so the size
    SimpleITK itself reads from the header can be checked against it too (:func:`_check_read_size`)."""
    with open(path, "rb") as f:
        nrrd = f.read(7) == b"NRRD000"
    if path.suffix.lower() in (".nrrd", ".nhdr") and not nrrd:
        return None  # not a NRRD file at all: SimpleITK says so
    info = read_header(path)
    if not info.data_files:
        files = [(path, info.header_bytes)]
        stored = path.stat().st_size - info.header_bytes
    else:
        named = (
            [path.parent / name for name in info.data_files]
            if allow_outside
            else check_data_files(path, info, path.parent)
        )
        files = [(f, 0) for f in named if f.is_file()]  # a missing one (trusted header): SimpleITK says so
        stored = sum(f.stat().st_size for f, _ in files)
    stored = max(stored, 0)
    most = (MAX_DEFLATE_RATIO if info.compressed else 1) * stored  # deflate cannot exceed ~1032:1
    if info.encoding in ("ascii", "hex"):
        _check_text_voxels(path, info, files, hint)
        # ascii: a value takes at least one digit and one separator; hex: two digits a byte
        itemsize = (info.declared_bytes or 0) // max(info.declared_values or 1, 1) or 8
        most = (stored + 1) // 2 * itemsize if info.encoding == "ascii" else stored // 2
    if info.declared_bytes is not None and info.declared_bytes > most:
        raise CorruptFileError(
            f"truncated or corrupt file: the header claims {info.declared_bytes} bytes of voxels, "
            f"more than the {stored} bytes that hold them can",
            path=path,
            hint=hint,
        )
    return most


def _check_text_voxels(path: Path, info: HeaderInfo, files: list[tuple[Path, int]], hint: str) -> None:
    """Refuse ``ascii`` voxel data holding a value longer than NrrdIO can read (:data:`NRRD_MAX_TEXT_VALUE`).

    ``files`` are the checked data files with the offset their data starts at. The whole stored data is scanned
    (a few bytes skipped before the values are scanned too: stricter, never laxer), a megabyte at a time.
    """
    if info.encoding != "ascii" or info.format != "nrrd":  # MetaIO reads numbers with C++ streams
        return
    long_value = re.compile(b"[^%s]{%d}" % (re.escape(_SPACE), NRRD_MAX_TEXT_VALUE + 1))
    for name, start in files:
        with open(name, "rb") as fh:
            fh.seek(start)
            carry = b""
            while chunk := fh.read(1 << 20):
                block = carry + chunk
                if long_value.search(block):
                    raise CorruptFileError(
                        f"an ascii-encoded voxel value is longer than {NRRD_MAX_TEXT_VALUE} characters "
                        "(NrrdIO cannot read it)",
                        path=path,
                        hint=hint,
                    )
                carry = _trailing_value(block)


def _trailing_value(block: bytes) -> bytes:
    """The run of non-space characters ``block`` ends with (a value that may go on in the next block).

    Example:
        >>> _trailing_value(b"1 2 34")
        b'34'
    """
    end = len(block)
    start = end
    while start > 0 and block[start - 1] not in _SPACE and end - start <= NRRD_MAX_TEXT_VALUE:
        start -= 1
    return block[start:end]


_BYTES_PER_VOXEL = {sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2, sitk.sitkFloat32: 4}


def _check_read_size(reader: sitk.ImageFileReader, most: int | None, path: Path, hint: str) -> None:
    """The size SimpleITK read from the header (its own parse) must be whole and fit the stored bytes."""
    size = [int(n) for n in reader.GetSize()]
    if any(n < 1 for n in size):
        raise CorruptFileError(f"the header's size {tuple(size)} has an empty axis", path=path, hint=hint)
    itemsize = _BYTES_PER_VOXEL.get(reader.GetPixelID())
    if most is None or itemsize is None:  # other pixel types (vector, complex) are refused just after
        return
    declared = math.prod(size) * itemsize
    if declared > most:
        raise CorruptFileError(
            f"truncated or corrupt file: the header's size {tuple(size)} needs {declared} bytes of voxels, "
            "more than the stored data can hold",
            path=path,
            hint=hint,
        )


def _geometry(reader: sitk.ImageFileReader, dim: int) -> tuple[list[float], list[float], np.ndarray]:
    """Spacing, origin and direction of the image's first three axes, from its header (a 2-D image: one slice)."""
    spacing = list(reader.GetSpacing())
    origin = list(reader.GetOrigin())
    direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(dim, dim)
    if dim == 2:
        spacing, origin = [*spacing, 1.0], [*origin, 0.0]
        direction = np.block([[direction, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]])
    return spacing[:3], origin[:3], direction[:3, :3]


def _check_geometry(spacing: list[float], origin: list[float], direction: np.ndarray, path: Path, hint: str) -> None:
    """Spacing, origin and direction a volume can have: finite, spacing 1e-6..1e6 mm, |origin| <= 1e9 mm, unit axes."""
    values = np.asarray([*spacing, *origin, *direction.ravel()], dtype=np.float64)
    problem = ""
    if not np.all(np.isfinite(values)):
        problem = "non-finite spacing, origin or direction"
    elif not spacing_in_range(abs(s) for s in spacing):
        problem = f"spacing {tuple(spacing)} mm is not between 1e-6 and 1e6"
    elif not position_in_range(origin):
        problem = f"origin {tuple(origin)} mm is out of range"
    elif np.any(np.abs(direction) > 1.001) or np.any(np.abs(np.linalg.norm(direction, axis=0) - 1.0) > 1e-3):
        problem = "the direction's axes are not unit vectors"
    if problem:
        raise CorruptFileError(f"invalid geometry: {problem}", path=path, hint=hint)


def read_itk_image(path: str | Path, *, modality: str | None = None, allow_outside: bool = False) -> Volume:
    """Read a NRRD / MetaImage file (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``) into a :class:`Volume`.

    The array is SimpleITK's ``[z, y, x]``; a 2-D image becomes one slice (1 mm thick unless stated), a 4-D
    image with one volume is squeezed. Multi-component (vector / RGB) and complex images are refused with
    :class:`~ctlens.core.errors.UnsupportedFormatError`. ``modality`` comes from the argument, else from
    the file (the ``ctlens_modality`` field :func:`write_itk_image` writes, or MetaImage's ``Modality``),
    else from :func:`ctlens.io.nifti.guess_modality`. ``meta`` holds only the format, dtype and where the
    modality came from; free-text header fields are dropped. Empty, truncated or unreadable files raise
    :class:`~ctlens.core.errors.CorruptFileError`. A header naming a data file outside its own folder (absolute,
    ``..``, through a link) raises :class:`~ctlens.core.errors.UnsafeArchiveError` unless ``allow_outside`` (a
    user's own files, trusted).

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np, SimpleITK as sitk
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "slice.mha"
        >>> sitk.WriteImage(sitk.GetImageFromArray(np.arange(6, dtype=np.float32).reshape(2, 3) * 100), path)
        >>> v = read_itk_image(path)
        >>> v.shape, v.array[0, 1, 2], v.modality, v.meta["source_format"]
        ((1, 2, 3), np.float32(500.0), 'MR', 'metaimage')
    """
    path = Path(path)
    fmt = _format_or_error(path, hint="rename the file or use the reader for its format")
    check_readable(path, "NRRD/MetaImage" if fmt == "nrrd" else "MetaImage")
    hint = "re-export or re-download the file"
    most = _check_header(path, allow_outside, hint)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(_IMAGE_IO[fmt])
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise CorruptFileError(short_reason(exc, path), path=path, hint=hint) from None

    _check_read_size(reader, most, path, hint)
    size = tuple(int(n) for n in reader.GetSize())
    dim = len(size)
    components = int(reader.GetNumberOfComponents())
    if components != 1 or reader.GetPixelID() in _COMPLEX:
        raise UnsupportedFormatError(
            f"{components}-component {sitk.GetPixelIDValueAsString(reader.GetPixelID())} image (vector, RGB or "
            "complex) is not supported",
            path=path,
            hint="extract one scalar component first (e.g. SimpleITK.VectorIndexSelectionCast)",
        )
    if dim not in (2, 3) and not (dim > 3 and all(n == 1 for n in size[3:])):
        raise UnsupportedFormatError(
            f"{dim}-D image of size {size} (x, y, z, ...) is not one 2-D or 3-D image",
            path=path,
            hint="split it into 3-D volumes first and read one",
        )
    spacing, origin, direction = _geometry(reader, dim)
    _check_geometry(spacing, origin, direction, path, hint)  # before any voxel: ITK loops on absurd directions
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        reason = short_reason(exc, path)
        if reason.startswith("File cannot be read"):  # MetaIO says only this (and a stale errno)
            detached = " or a missing data file named in the header" if path.suffix.lower() == ".mhd" else ""
            reason = f"the voxel data could not be read (truncated data{detached})"
        raise CorruptFileError(reason, path=path, hint=hint) from None

    array = sitk.GetArrayFromImage(image)
    array = array[None] if dim == 2 else array.reshape(array.shape[dim - 3 :]) if dim > 3 else array
    keys = set(reader.GetMetaDataKeys())
    meta: dict[str, Any] = {
        "source_format": fmt,
        "detached_header": path.suffix.lower() in (".nhdr", ".mhd"),
        "dtype": str(array.dtype),
    }
    if dim != 3:
        meta["source_ndim"] = dim
    file_modality = reader.GetMetaData(_MODALITY_KEY).strip() if _MODALITY_KEY in keys else ""
    if not file_modality and "Modality" in keys:
        file_modality = _META_MODALITY.get(reader.GetMetaData("Modality").strip(), "")
    if modality is not None:
        meta["modality_source"] = "caller"
    elif re.fullmatch(r"[A-Z]{2,8}", file_modality):
        modality, meta["modality_source"] = file_modality, "file"
    else:
        modality, meta["modality_source"] = guess_modality(array), "heuristic"
    try:
        return Volume.from_itk_geometry(array, spacing, origin, direction, modality=modality, meta=meta)
    except ValueError as exc:
        raise CorruptFileError(f"invalid geometry: {exc}", path=path, hint=hint) from None


def write_itk_image(volume: Volume, path: str | Path, *, compress: bool = True) -> None:
    """Write ``volume`` as NRRD or MetaImage (chosen by the suffix), atomically.

    Geometry is written in LPS (ITK's own convention), the array in its dtype (bool as uint8, float16 as
    float32), the modality in a ``ctlens_modality`` field. ``compress`` gzips / zlib-compresses the voxels.
    For detached headers (``.nhdr``, ``.mhd``) the data file is moved into place before the header, so a
    header never points at missing data. See :func:`ctlens.io.files.atomic_output`.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_itk_image(Volume(np.ones((2, 2, 2), np.uint16), modality="MR"), folder / "mr.mhd")
        >>> sorted(p.name for p in folder.iterdir()), read_itk_image(folder / "mr.mhd").modality
        (['mr.mhd', 'mr.zraw'], 'MR')
    """
    path = Path(path)
    fmt = _format_or_error(path, hint="choose a .nrrd, .nhdr, .mha or .mhd path")
    arr = volume.array
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind not in "iuf":
        raise UnsupportedFormatError(
            f"cannot store voxel type {arr.dtype} in {fmt}", path=path, hint="convert the array to int or float"
        )
    try:
        image = sitk.GetImageFromArray(np.ascontiguousarray(arr), isVector=False)
        spacing, origin, direction = volume.itk_geometry()
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UnsupportedFormatError(
            f"cannot convert the volume for {fmt}: {short_reason(exc)}", path=path, hint="check its dtype and geometry"
        ) from None
    if re.fullmatch(r"[A-Z]{2,8}", str(volume.modality or "")):
        image.SetMetaData(_MODALITY_KEY, volume.modality)
    with atomic_output(path) as tmp:
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp))
        writer.SetImageIO(_IMAGE_IO[fmt])
        writer.SetUseCompression(compress)
        try:
            writer.Execute(image)
        except RuntimeError as exc:
            raise CTLensError(
                f"cannot write {fmt}: {short_reason(exc, tmp)}", path=path, hint="check free disk space"
            ) from None
