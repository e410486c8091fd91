"""Rules for every value of a ``.ctz`` header and slice index, checked before anything is allocated or decoded.

CRCs only prove that a file is what its writer wrote; anyone can write a file whose checksums match and whose
header asks for a 2 TiB array, a complex dtype, a zero spacing or a singular direction. :func:`check_header`
and :func:`check_records` refuse such files with :class:`~ctlens.core.errors.CorruptFileError` (or
:class:`~ctlens.core.errors.UnsupportedFormatError` for a dtype the format does not store), naming the file and
the value, so the decoder only ever sees values it can honour:

* ``shape_yx``: two integers, each ``1..65535`` (JPEG-LS's limit, docs/ctz_format.md);
* ``dtype``: a numpy integer or boolean type of 1, 2 or 4 bytes (what the encoder accepts);
* the decoded size ``n_slices x rows x columns x itemsize`` within ``CTLENS_MAX_ARCHIVE_BYTES`` (the budget of
  every compressed input);
* ``spacing``: three finite numbers in ``(0, 1e6]`` mm; ``origin``: three finite numbers within +-1e9 mm;
* ``direction``: a 3x3 matrix of finite numbers whose columns are unit vectors (+-1e-3) and whose determinant is
  at least 0.01 in size (not singular);
* ``modality``: a string of at most 16 characters (DICOM's CS length); ``meta`` and ``codec``: JSON objects;
* index records: a known backend and predictor, ``near <= 127``, slice 0 intra-coded, and the slices back to
  back from the end of the header to the index (no record may overlap another: a file cannot reuse one stream
  for thousands of slices).

The encoder checks its own header with the same rules, so every file ctlens writes, ctlens reads back.

Example:
    >>> good = {"shape_yx": [4, 4], "dtype": "<i2", "spacing": [1, 1, 1], "origin": [0, 0, 0],
    ...         "direction": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    >>> check_header(good, "a.ctz", n_slices=2).shape_yx
    (4, 4)
    >>> check_header({**good, "spacing": [0, -1, 1e308]}, "a.ctz", n_slices=2)
    Traceback (most recent call last):
    ...
    ctlens.core.errors.CorruptFileError: a.ctz: header spacing [0, -1, 1e+308] ...
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CorruptFileError, UnsupportedFormatError
from ctlens.core.volume import MAX_POSITION_MM, position_in_range, spacing_in_range

__all__ = ["MAX_SIDE", "SeriesHeader", "check_header", "check_records", "decoded_budget", "open_checked"]

MAX_SIDE = 65535
"""Largest number of rows or columns of a slice (JPEG-LS codes at most 65535 x 65535 samples)."""
MAX_MODALITY_CHARS = 16
MAX_NEAR = 127
_UNIT_TOLERANCE = 1e-3
_MIN_ABS_DET = 1e-2
_MAX_META_DEPTH = 32
_HINT = "the .ctz header holds values no ctlens encoder writes; re-create the file"
_BACKENDS = (0, 1, 2, 3)  # blosc2, jpegls, htj2k, jpegxl (ctlens.codec.backends.BACKEND_IDS; stable format ids)
_PREDICTORS = (0, 1)  # intra, inter (ctlens.codec.slice_codec)


@dataclasses.dataclass(frozen=True)
class SeriesHeader:
    """The checked geometry of a ``.ctz`` series header."""

    shape_yx: tuple[int, int]
    dtype: np.dtype
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    modality: str
    meta: dict[str, Any]


def decoded_budget() -> int:
    """Most bytes one ``.ctz`` may decode to: ``CTLENS_MAX_ARCHIVE_BYTES`` (default 8 GiB).

    Example:
        >>> decoded_budget() > 0
        True
    """
    from ctlens.core.settings import get_settings

    return int(get_settings().max_archive_bytes)


def _fail(path: str | Path, reason: str) -> CorruptFileError:
    return CorruptFileError(reason, path=path, hint=_HINT)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(header: dict[str, Any], key: str, n: int, path: str | Path) -> list[float]:
    value = header.get(key)
    if not isinstance(value, list) or len(value) != n or not all(_is_number(v) for v in value):
        raise _fail(path, f"header {key} {_short(value)} is not a list of {n} numbers")
    try:
        out = [float(v) for v in value]
    except OverflowError:  # an integer too large for a float
        raise _fail(path, f"header {key} {_short(value)} is out of range") from None
    if not all(math.isfinite(v) for v in out):
        raise _fail(path, f"header {key} {_short(value)} holds a non-finite number")
    return out


def _shape(header: dict[str, Any], path: str | Path) -> tuple[int, int]:
    value = header.get("shape_yx")
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in value)
    ):
        raise _fail(path, f"header shape_yx {_short(value)} is not two integers within 1..{MAX_SIDE}")
    return int(value[0]), int(value[1])


def _dtype(header: dict[str, Any], path: str | Path) -> np.dtype:
    value = header.get("dtype")
    dtype = None
    if isinstance(value, str) and 0 < len(value) <= 8:
        try:
            dtype = np.dtype(value)
        except (TypeError, ValueError, SyntaxError):
            dtype = None
    if dtype is None:
        raise _fail(path, f"header dtype {_short(value)} is not a numpy type name")
    if dtype.kind not in "iub" or dtype.itemsize not in (1, 2, 4) or dtype.fields is not None:
        raise UnsupportedFormatError(
            f"header dtype {_short(value)} is not an integer type of 1, 2 or 4 bytes (the only ones .ctz stores)",
            path=path,
            hint=_HINT,
        )
    return dtype


def _direction(header: dict[str, Any], path: str | Path) -> np.ndarray:
    value = header.get("direction")
    rows = value if isinstance(value, list) and len(value) == 3 else None
    if rows is None or not all(isinstance(r, list) and len(r) == 3 and all(_is_number(v) for v in r) for r in rows):
        raise _fail(path, f"header direction {_short(value)} is not a 3x3 list of numbers")
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise _fail(path, f"header direction {_short(value)} is out of range") from None
    if not np.isfinite(matrix).all():
        raise _fail(path, f"header direction {_short(value)} holds a non-finite number")
    norms = np.linalg.norm(matrix, axis=0)
    if np.abs(norms - 1).max() > _UNIT_TOLERANCE:
        raise _fail(path, f"header direction {_short(value)}: its columns are not unit vectors")
    if abs(float(np.linalg.det(matrix))) < _MIN_ABS_DET:
        raise _fail(path, f"header direction {_short(value)} is singular (its axes are parallel)")
    return matrix


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of JSON ``value``, stopping once it exceeds ``limit`` (no deep recursion)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        level = nxt
    return depth


def check_header(header: Any, path: str | Path, *, n_slices: int, budget: int | None = None) -> SeriesHeader:
    """Check a ``.ctz`` series header (module doc for the rules); ``budget`` defaults to :func:`decoded_budget`.

    Example:
        >>> h = {"shape_yx": [200000, 200000], "dtype": "<i2", "spacing": [1, 1, 1], "origin": [0, 0, 0],
        ...      "direction": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
        >>> check_header(h, "big.ctz", n_slices=1)
        Traceback (most recent call last):
        ...
        ctlens.core.errors.CorruptFileError: big.ctz: header shape_yx [200000, 200000] is not two integers ...
    """
    if not isinstance(header, dict):
        raise _fail(path, f"header is a JSON {type(header).__name__}, not an object")
    if header.get("format", "ctz") != "ctz":
        raise _fail(path, f"header format {_short(header.get('format'))} is not 'ctz'")
    shape = _shape(header, path)
    dtype = _dtype(header, path)
    if n_slices < 1:
        raise _fail(path, "the file holds no slices")
    limit = decoded_budget() if budget is None else int(budget)
    size = n_slices * shape[0] * shape[1] * dtype.itemsize
    if size > limit:
        raise CorruptFileError(
            f"decodes to {size} bytes ({n_slices} slices of {shape[0]}x{shape[1]} {dtype}), over the limit of "
            f"{limit} bytes",
            path=path,
            hint="set CTLENS_MAX_ARCHIVE_BYTES if this file is trusted",
        )
    spacing = _numbers(header, "spacing", 3, path)
    if not spacing_in_range(spacing):
        raise _fail(path, f"header spacing {_short(header['spacing'])} is not three numbers in (1e-6, 1e6] mm")
    origin = _numbers(header, "origin", 3, path)
    if not position_in_range(origin):
        raise _fail(path, f"header origin {_short(header['origin'])} is not within +-{MAX_POSITION_MM:g} mm")
    direction = _direction(header, path)
    modality = header.get("modality", "CT")
    if not isinstance(modality, str) or len(modality) > MAX_MODALITY_CHARS or not modality.isprintable():
        raise _fail(path, f"header modality {_short(modality)} is not a text of at most 16 characters")
    meta = header.get("meta", {})
    for key in ("meta", "codec"):
        value = header.get(key, {})
        if not isinstance(value, dict):
            raise _fail(path, f"header {key} is a JSON {type(value).__name__}, not an object")
        if _depth(value, _MAX_META_DEPTH) > _MAX_META_DEPTH:
            raise _fail(path, f"header {key} is nested deeper than {_MAX_META_DEPTH} levels")
    return SeriesHeader(
        shape,
        dtype,
        (spacing[0], spacing[1], spacing[2]),
        (origin[0], origin[1], origin[2]),
        direction,
        modality,
        meta,
    )


def check_records(records: Sequence[Any], data_start: int, index_offset: int, path: str | Path) -> None:
    """Check index records (``SliceRecord``): known backend/predictor, ``near <= 127``, slice 0 intra, back to back.

    Example:
        >>> from ctlens.codec.container import SliceRecord, SliceRecordMeta
        >>> r = SliceRecord(20, 5, 0, 0, SliceRecordMeta(backend=1, predictor=1, bias=0, near=0))
        >>> check_records([r], 20, 25, "a.ctz")
        Traceback (most recent call last):
        ...
        ctlens.core.errors.CorruptFileError: a.ctz: slice 0 is coded from a previous slice, but it is the first ...
    """
    expected = data_start
    for k, rec in enumerate(records):
        meta = rec.meta
        if meta.backend not in _BACKENDS:
            raise _fail(path, f"slice {k}: unknown entropy backend id {meta.backend}")
        if meta.predictor not in _PREDICTORS:
            raise _fail(path, f"slice {k}: unknown predictor id {meta.predictor}")
        if k == 0 and meta.predictor != 0:
            raise _fail(path, "slice 0 is coded from a previous slice, but it is the first (no slice precedes it)")
        if meta.near > MAX_NEAR:
            raise _fail(path, f"slice {k}: error bound near={meta.near} is over {MAX_NEAR}")
        if rec.main_len == 0:
            raise _fail(path, f"slice {k}: empty main stream")
        if rec.offset != expected:
            raise _fail(path, f"slice {k}: stream at byte {rec.offset}, expected {expected} (slices are back to back)")
        expected = rec.offset + rec.main_len + rec.corr_len
    if expected != index_offset:
        raise _fail(path, f"the slice streams end at byte {expected}, but the index starts at {index_offset}")


def open_checked(path: str | Path) -> tuple[Any, SeriesHeader]:
    """Open a ``.ctz`` (:class:`~ctlens.codec.container.CtzReader`: checksums) and check its header and index.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> from ctlens.codec.series import encode_volume
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "o.ctz"
        >>> _ = encode_volume(np.zeros((2, 3, 4), np.int16), path)
        >>> reader, header = open_checked(path)
        >>> reader.n_slices, header.shape_yx, header.dtype
        (2, (3, 4), dtype('int16'))
    """
    from ctlens.codec.container import CtzReader

    reader = CtzReader(path)
    header = check_header(reader.header, reader.path, n_slices=reader.n_slices)
    check_records(reader.records, reader.data_start, reader.index_offset, reader.path)
    return reader, header
