"""The order of the volumes of an enhanced multi-frame file, from its Multi-frame Dimension module (PS3.3 C.7.6.17).

Every frame of an enhanced file carries ``DimensionIndexValues`` (0020,9157): one index per item of the file's
``DimensionIndexSequence`` (0020,9222), in the order of its items, each item naming the attribute it indexes
(``DimensionIndexPointer``). Whatever order the frames are stored in, these indices place every frame: the item
pointing at ``InStackPositionNumber`` (0020,9057) or ``ImagePositionPatient`` (0020,0032) is the position within
a volume, the others (``TemporalPositionIndex``, diffusion b-value and direction, echo...) tell volumes apart.

Vendors list the dimensions in either direction: Philips puts the spatial items first
(``StackID, InStackPositionNumber, TemporalPositionIndex``), Canon and Bruker last. :func:`volume_order_keys`
orders volumes as dcm2niix does (``nii_dicom.cpp``: the position varies fastest, and the dimensions farther from
it in the sequence vary slower): when the spatial item comes before the last item whose value varies, the last
item is the most significant; otherwise the first is.

Example:
    >>> from pydicom.dataset import Dataset
    >>> header = Dataset()
    >>> items = [Dataset() for _ in range(3)]
    >>> for item, pointer in zip(items, (0x00209056, 0x00209057, 0x00209128)):
    ...     item.DimensionIndexPointer = pointer
    >>> header.DimensionIndexSequence = items
    >>> volume_order_keys(header, [[(1, 1, 2), (1, 2, 2)], [(1, 1, 1), (1, 2, 1)]])
    [(2, 1, 1), (1, 1, 1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

__all__ = ["SPATIAL_POINTERS", "dimension_values", "volume_dimension_key", "volume_order_keys"]

SPATIAL_POINTERS = frozenset({0x00209057, 0x00200032})
"""InStackPositionNumber and ImagePositionPatient: the dimensions that place a frame within a volume."""
STACK_POINTER = 0x00209056
"""StackID: stacks are told apart by ``ctlens.io.series_split`` on their own."""


def dimension_values(value: Any) -> tuple[int, ...] | None:
    """One frame's DimensionIndexValues as a tuple of ints (a single value too), None if absent or not numbers.

    Example:
        >>> dimension_values([1, 4, 2]), dimension_values(3), dimension_values(None), dimension_values(["x"])
        ((1, 4, 2), (3,), None, None)
    """
    if value is None:
        return None
    values = [value] if isinstance(value, int | float | str) else list(value)
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        return None


def _pointers(header: Dataset) -> list[int]:
    out = []
    for item in header.get("DimensionIndexSequence") or []:
        try:
            out.append(int(item.DimensionIndexPointer))
        except (AttributeError, TypeError, ValueError):
            out.append(-1)
    return out


def volume_order_keys(header: Dataset, volumes: Sequence[Sequence[tuple[int, ...]]]) -> list[tuple[int, ...]] | None:
    """A sort key per volume (its frames' DimensionIndexValues), dcm2niix's order (module docstring).

    ``header``: the file's data set (for the DimensionIndexSequence); ``volumes``: per volume, the
    DimensionIndexValues of its frames. None when a volume has no frames or the frames' value counts differ.
    """
    if not volumes or any(not frames for frames in volumes):
        return None
    n = len(volumes[0][0])
    if n == 0 or any(len(d) != n for frames in volumes for d in frames):
        return None
    pointers = _pointers(header)
    spatial = 0  # dcm2niix's default when no item points at a position
    if len(pointers) == n:
        spatial = max((i for i, p in enumerate(pointers) if p in SPATIAL_POINTERS), default=0)
    every = [d for frames in volumes for d in frames]
    varying = [i for i in range(n) if len({d[i] for d in every}) > 1]
    significance = range(n - 1, -1, -1) if varying and spatial < max(varying) else range(n)
    return [min(tuple(d[i] for i in significance) for d in frames) for frames in volumes]


def volume_dimension_key(header: Dataset, value: Any) -> str | None:
    """The text of one frame's non-spatial DimensionIndexValues (``"2.1"``): what tells its volume apart.

    The items pointing at a position or at StackID are left out; None without a DimensionIndexSequence that
    matches the values, or when no other item is left. Frames of one volume share the key whatever attribute
    the dimensions index (private ones too), so a reader can split the frames of an enhanced file by it.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> header = Dataset()
        >>> header.DimensionIndexSequence = [Dataset() for _ in range(3)]
        >>> for item, pointer in zip(header.DimensionIndexSequence, (0x00209056, 0x00209057, 0x00211001)):
        ...     item.DimensionIndexPointer = pointer
        >>> volume_dimension_key(header, [1, 7, 3]), volume_dimension_key(header, [1, 7])
        ('3', None)
    """
    values = dimension_values(value)
    pointers = _pointers(header)
    if values is None or len(values) != len(pointers):
        return None
    kept = [v for v, p in zip(values, pointers, strict=True) if p not in SPATIAL_POINTERS and p != STACK_POINTER]
    return ".".join(str(v) for v in kept) if kept else None
