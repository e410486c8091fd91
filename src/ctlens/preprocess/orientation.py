"""Orientation of a :class:`~ctlens.core.volume.Volume`'s array axes: codes, exact reorientation, slice axis.

Two orders of orientation codes are in use, and this module names which one each function takes:

* **array order** ``(z, y, x)`` -- ctlens' own order: :func:`axcodes` returns one letter per array
  axis, axis 0 first. An axial DICOM series stored the usual way gives ``('S', 'P', 'L')``: the
  slice index grows towards Superior, the row index towards Posterior, the column index towards Left.
* **NIfTI order** ``(x, y, z)`` = array order reversed -- how nibabel, NIfTI, SimpleITK's
  ``DICOMOrient`` and NeuroVFM write codes. :func:`reorient`'s ``target`` is in this order, so
  ``"RPI"`` (NeuroVFM) means: NIfTI axis x (array axis 2) points Right, y (array axis 1) points
  Posterior, z (array axis 0) points Inferior; ``axcodes`` of the result is ``('I', 'P', 'R')``.

Every letter names where the axis *points to* (the direction of increasing index), as in nibabel
and DICOM, not where it comes from (ITK's older ``RAI``-style names).

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> v = Volume(np.zeros((2, 3, 4), np.int16), spacing=(5.0, 0.8, 0.8))
    >>> axcodes(v), axcodes(reorient(v, "RPI")), slice_axis(v), slice_plane(v)
    (('S', 'P', 'L'), ('I', 'P', 'R'), 0, 'axial')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctlens.core.volume import Volume
from ctlens.io.lps_ras import axcodes

__all__ = ["axcodes", "permute_axes", "reorient", "slice_axis", "slice_plane"]

_WORLD_AXIS = {"L": 0, "R": 0, "P": 1, "A": 1, "S": 2, "I": 2}
_PLANES = ("sagittal", "coronal", "axial")
"""Slice plane when the slice (through-plane) axis runs along LPS x, y, z."""


def _world_axes(direction: np.ndarray) -> list[tuple[int, int]]:
    """``(LPS world axis, sign)`` of each array axis: the closest world axis, each world axis used once."""
    weights = np.abs(np.asarray(direction, dtype=np.float64))
    out: list[tuple[int, int]] = [(0, 1)] * 3
    for _ in range(3):
        world, axis = np.unravel_index(int(np.argmax(weights)), weights.shape)
        out[axis] = (int(world), 1 if direction[world, axis] >= 0 else -1)
        weights[world, :] = -1.0
        weights[:, axis] = -1.0
    return out


def _parse_codes(codes: str | Sequence[str]) -> tuple[str, str, str]:
    letters = tuple(str(c).upper() for c in codes)
    if len(letters) != 3 or any(c not in _WORLD_AXIS for c in letters):
        raise ValueError(f"orientation codes must be three of L/R, P/A, S/I (e.g. 'RPI'), got {codes!r}")
    if len({_WORLD_AXIS[c] for c in letters}) != 3:
        raise ValueError(f"orientation codes {codes!r} name a patient axis twice; use one of L/R, P/A and S/I each")
    return letters  # type: ignore[return-value]


def permute_axes(volume: Volume, order: Sequence[int], flip: Sequence[bool] = (False, False, False)) -> Volume:
    """Transpose (new axis ``j`` = old axis ``order[j]``) and optionally flip new axes, keeping world positions.

    Pure index bookkeeping, no interpolation: spacing, origin and direction are updated so that every
    voxel keeps its LPS position. The returned array is C-contiguous.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.arange(24).reshape(2, 3, 4), spacing=(3.0, 2.0, 1.0))
        >>> w = permute_axes(v, (2, 1, 0), flip=(True, False, False))
        >>> w.shape, w.spacing, bool(np.allclose(w.world((0, 1, 1)), v.world((1, 1, 3))))
        ((4, 3, 2), (1.0, 2.0, 3.0), True)
    """
    order = tuple(int(a) for a in order)
    flips = tuple(bool(f) for f in flip)
    if sorted(order) != [0, 1, 2] or len(flips) != 3:
        raise ValueError(f"order must be a permutation of (0, 1, 2) and flip three booleans, got {order}, {flip}")
    array = np.transpose(volume.array, order)
    start = np.zeros(3)
    for new_axis, old_axis in enumerate(order):
        if flips[new_axis]:
            array = np.flip(array, new_axis)
            start[old_axis] = volume.shape[old_axis] - 1
    signs = np.where(flips, -1.0, 1.0)
    return volume.with_array(
        np.ascontiguousarray(array),
        spacing=tuple(volume.spacing[a] for a in order),
        origin=tuple(volume.world(start).tolist()),
        direction=volume.direction[:, list(order)] * signs[None, :],
    )


def reorient(volume: Volume, target: str | Sequence[str] = "RPI") -> Volume:
    """Flip / permute the array so its axes point as ``target`` says, in **NIfTI order** ``(x, y, z)``.

    ``"RPI"`` (NeuroVFM's choice, the default) gives array axes ``(z, y, x)`` pointing
    ``(Inferior, Posterior, Right)``. Exact: only axis flips and transpositions, no interpolation; origin,
    spacing and direction are updated so every voxel keeps its world position. Oblique volumes stay
    oblique (each axis goes to its closest patient axis). A volume already in ``target`` comes back with
    the same geometry.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.arange(8).reshape(2, 2, 2), spacing=(3.0, 1.0, 1.0))
        >>> r = reorient(v, "RPI")
        >>> axcodes(r), int(r.array[0, 0, 0]) == int(v.array[1, 0, 1])
        (('I', 'P', 'R'), True)
        >>> bool(np.allclose(r.world((0, 0, 0)), v.world((1, 0, 1))))
        True
        >>> axcodes(reorient(v, "LPS"))
        ('S', 'P', 'L')
    """
    wanted = _parse_codes(target)[::-1]  # array order
    current = axcodes(volume)
    order: list[int] = []
    flips: list[bool] = []
    for code in wanted:
        old_axis = next(a for a, c in enumerate(current) if _WORLD_AXIS[c] == _WORLD_AXIS[code])
        order.append(old_axis)
        flips.append(current[old_axis] != code)
    return permute_axes(volume, order, flips)


def slice_axis(volume: Volume) -> int:
    """Array axis (0, 1 or 2) that is the through-plane (slice) axis: the one with the largest spacing.

    Ties (within 0.1 %), e.g. isotropic volumes, go to the axis closest to the patient's S/I direction.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> slice_axis(Volume(np.zeros((9, 9, 9)), spacing=(0.8, 0.8, 5.0))), slice_axis(Volume(np.zeros((9, 9, 9))))
        (2, 0)
    """
    spacing = np.asarray(volume.spacing)
    candidates = np.flatnonzero(spacing >= spacing.max() * (1 - 1e-3))
    if len(candidates) == 1:
        return int(candidates[0])
    along_si = np.abs(volume.direction[2, candidates])
    return int(candidates[int(np.argmax(along_si))])


def slice_plane(volume: Volume) -> str:
    """Acquisition plane -- ``'axial'``, ``'coronal'`` or ``'sagittal'`` -- from :func:`slice_axis`.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> slice_plane(Volume(np.zeros((4, 4, 4)), spacing=(1.0, 5.0, 1.0)))
        'coronal'
    """
    world, _ = _world_axes(volume.direction)[slice_axis(volume)]
    return _PLANES[world]
