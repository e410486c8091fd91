"""Centre padding / cropping of arrays or Volumes to a multiple of a patch size.

Padding splits the extra voxels ``total // 2`` before and the rest after; cropping removes them the
same way. For a :class:`~ctlens.core.volume.Volume` the origin moves so every kept voxel keeps its
world position.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> v = Volume(np.zeros((5, 20, 30), np.int16), spacing=(4.0, 1.0, 1.0))
    >>> p = pad_to_multiple(v, (4, 16, 16))
    >>> p.shape, p.origin, int(p.array.min())
    ((8, 32, 32), (-1.0, -6.0, -4.0), -1024)
    >>> crop_to_multiple(v, (4, 16, 16)).shape
    (4, 16, 16)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from ctlens.core.volume import Volume

__all__ = ["crop_to_multiple", "crop_widths", "pad_to_multiple", "pad_widths"]

Data = TypeVar("Data", np.ndarray, Volume)


def _multiple(multiple: Sequence[int] | int, ndim: int) -> tuple[int, ...]:
    m = (int(multiple),) * ndim if isinstance(multiple, (int, np.integer)) else tuple(int(v) for v in multiple)
    if len(m) != ndim or min(m) < 1:
        raise ValueError(f"multiple must be {ndim} positive integers, got {multiple!r}")
    return m


def pad_widths(shape: Sequence[int], multiple: Sequence[int] | int = (4, 16, 16)) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per axis that centre-pads ``shape`` up to a multiple of ``multiple``.

    Example:
        >>> pad_widths((5, 20, 32))
        ((1, 2), (6, 6), (0, 0))
    """
    m = _multiple(multiple, len(shape))
    totals = [(-int(n)) % q for n, q in zip(shape, m, strict=True)]
    return tuple((t // 2, t - t // 2) for t in totals)


def crop_widths(shape: Sequence[int], multiple: Sequence[int] | int = (4, 16, 16)) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per axis that centre-crops ``shape`` down to a multiple of ``multiple``.

    Raises ``ValueError`` when an axis is shorter than its multiple (pad instead).

    Example:
        >>> crop_widths((5, 20, 32))
        ((0, 1), (2, 2), (0, 0))
    """
    m = _multiple(multiple, len(shape))
    short = [(int(n), q) for n, q in zip(shape, m, strict=True) if int(n) < q]
    if short:
        raise ValueError(f"cannot crop shape {tuple(shape)} to a multiple of {m}: axis too short; pad instead")
    totals = [int(n) % q for n, q in zip(shape, m, strict=True)]
    return tuple((t // 2, t - t // 2) for t in totals)


def pad_to_multiple(data: Data, multiple: Sequence[int] | int = (4, 16, 16), value: float | None = None) -> Data:
    """Centre-pad an array or Volume so each axis is a multiple of ``multiple`` (array order ``z, y, x``).

    ``value`` defaults to -1024 (air) for a CT Volume of signed or float values and 0 otherwise (arrays,
    MR, masks). A Volume comes back with the
    origin moved to the new first voxel; an array comes back as an array (see :func:`pad_widths` for
    the offsets).

    Example:
        >>> import numpy as np
        >>> pad_to_multiple(np.ones((1, 1, 3), np.uint8), (1, 2, 4)).tolist()
        [[[1, 1, 1, 0], [0, 0, 0, 0]]]
    """
    arr = data.array if isinstance(data, Volume) else np.asarray(data)
    if value is None:
        is_ct = isinstance(data, Volume) and str(data.modality or "").upper() == "CT"
        value = -1024 if is_ct and arr.dtype.kind in "if" else 0  # masks / unsigned arrays pad with 0
    widths = pad_widths(arr.shape, multiple)
    if not any(b or a for b, a in widths):
        return data.with_array(arr.copy()) if isinstance(data, Volume) else arr.copy()
    fill = np.asarray(value).astype(arr.dtype)
    if arr.dtype != bool and fill.item() != value:
        raise ValueError(f"pad value {value!r} does not fit the array dtype {arr.dtype}; pass another value")
    out = np.pad(arr, widths, mode="constant", constant_values=fill)
    if not isinstance(data, Volume):
        return out
    before = [b for b, _ in widths]
    return data.with_array(out, origin=tuple(data.world([-b for b in before]).tolist()))


def crop_to_multiple(data: Data, multiple: Sequence[int] | int = (4, 16, 16)) -> Data:
    """Centre-crop an array or Volume so each axis is a multiple of ``multiple`` (array order ``z, y, x``).

    A Volume comes back with the origin at the first kept voxel. The result is a copy.

    Example:
        >>> import numpy as np
        >>> crop_to_multiple(np.arange(5)[None, None, :], (1, 1, 2)).tolist()
        [[[0, 1, 2, 3]]]
    """
    arr = data.array if isinstance(data, Volume) else np.asarray(data)
    widths = crop_widths(arr.shape, multiple)
    out = arr[tuple(slice(b, n - a) for (b, a), n in zip(widths, arr.shape, strict=True))].copy()
    if not isinstance(data, Volume):
        return out
    return data.with_array(out, origin=tuple(data.world([b for b, _ in widths]).tolist()))
