"""In-plane (slice by slice) Euclidean distances and the closing / opening built on them.

Large disks make structuring-element morphology slow; a distance transform gives the same result at a cost
independent of the radius. Slice-by-slice 2-D transforms are about 6x faster than one 3-D transform with a
huge z sampling (scipy computes every axis either way).

Example:
    >>> import numpy as np
    >>> m = np.zeros((1, 9, 9), bool); m[0, 2:7, 2:7] = True; m[0, 4, 4] = False
    >>> bool(closing_in_plane(m, 1.5, (1.0, 1.0))[0, 4, 4]), int(opening_in_plane(m, 3.0, (1.0, 1.0)).sum())
    (True, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage

__all__ = [
    "PLANE4",
    "ComponentExtent",
    "closing_in_plane",
    "component_extent",
    "distance_in_plane",
    "fill_holes_in_plane",
    "nearest_label_in_plane",
    "opening_in_plane",
]

PLANE4 = np.zeros((3, 3, 3), bool)
"""3-D structuring element that connects only within a slice (4-connectivity in-plane)."""
PLANE4[1] = ndimage.generate_binary_structure(2, 1)


def distance_in_plane(mask: np.ndarray, spacing_yx: Sequence[float]) -> np.ndarray:
    """Per slice, the distance (mm) of each True voxel to the nearest False voxel of its slice (inf if none)."""
    out = np.zeros(mask.shape, np.float32)
    sampling = (float(spacing_yx[-2]), float(spacing_yx[-1]))
    for z in range(mask.shape[0]):
        s = mask[z]
        if not s.any():
            continue
        if s.all():
            out[z] = np.inf
            continue
        out[z] = ndimage.distance_transform_edt(s, sampling=sampling)
    return out


def _slice_box(s: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Box of the True pixels of a 2-D mask grown by ``margin`` (clipped); ``None`` when there are none."""
    ys, xs = np.nonzero(s.any(axis=1))[0], np.nonzero(s.any(axis=0))[0]
    if ys.size == 0:
        return None
    return (
        slice(max(0, int(ys[0]) - margin), min(s.shape[0], int(ys[-1]) + 1 + margin)),
        slice(max(0, int(xs[0]) - margin), min(s.shape[1], int(xs[-1]) + 1 + margin)),
    )


def _edt(s: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """2-D distance (mm) of True pixels to the nearest False pixel (inf everywhere when there is none)."""
    if s.all():
        return np.full(s.shape, np.inf, np.float32)
    return ndimage.distance_transform_edt(s, sampling=sampling)


def closing_in_plane(mask: np.ndarray, radius_mm: float, spacing_yx: Sequence[float]) -> np.ndarray:
    """Binary closing with an in-plane disk of ``radius_mm``.

    Computed per slice inside the box of the mask grown by the radius and 2 pixels: the closing of a set with
    a disk lies in the set's box, and the grown ring is never inside the dilation, so the crop is exact.
    """
    sampling = (float(spacing_yx[-2]), float(spacing_yx[-1]))
    margin = int(np.ceil(radius_mm / min(sampling))) + 2
    out = np.zeros(mask.shape, bool)
    for z in range(mask.shape[0]):
        box = _slice_box(mask[z], margin)
        if box is None:
            continue
        grown = _edt(~mask[z][box], sampling) <= radius_mm
        out[z][box] = _edt(grown, sampling) > radius_mm
    return out


def opening_in_plane(mask: np.ndarray, radius_mm: float, spacing_yx: Sequence[float]) -> np.ndarray:
    """Binary opening with an in-plane disk of ``radius_mm`` (kept within ``mask``).

    Computed per slice inside the box of the mask grown by one pixel (the opening lies within the mask; its
    distances are to pixels inside that box or to its all-background ring), so the crop is exact.
    """
    sampling = (float(spacing_yx[-2]), float(spacing_yx[-1]))
    out = np.zeros(mask.shape, bool)
    for z in range(mask.shape[0]):
        box = _slice_box(mask[z], 1)
        if box is None:
            continue
        m = mask[z][box]
        core = _edt(m, sampling) > radius_mm
        out[z][box] = (_edt(~core, sampling) <= radius_mm) & m
    return out


def fill_holes_in_plane(mask: np.ndarray) -> np.ndarray:
    """Holes filled slice by slice (4-connected background), computed inside the mask's box grown by one pixel.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((2, 7, 7), bool); m[1, 1:6, 1:6] = True; m[1, 3, 3] = False
        >>> int(fill_holes_in_plane(m).sum()), int(fill_holes_in_plane(m)[0].sum())
        (25, 0)
    """
    out = np.zeros(mask.shape, bool)
    zs = np.nonzero(mask.any(axis=(1, 2)))[0]
    if zs.size == 0:
        return out
    box = (slice(int(zs[0]), int(zs[-1]) + 1), *_slice_box(mask[zs[0] : zs[-1] + 1].any(axis=0), 1))
    out[box] = ndimage.binary_fill_holes(mask[box], PLANE4)
    return out


def nearest_label_in_plane(seeds: np.ndarray, mask: np.ndarray, spacing_yx: Sequence[float]) -> np.ndarray:
    """Label of the nearest non-zero ``seeds`` voxel of the same slice, for every ``mask`` voxel (0 if none)."""
    out = np.zeros(seeds.shape, seeds.dtype)
    sampling = (float(spacing_yx[-2]), float(spacing_yx[-1]))
    for z in range(seeds.shape[0]):
        if not mask[z].any() or not seeds[z].any():
            continue
        _, (iy, ix) = ndimage.distance_transform_edt(seeds[z] == 0, sampling=sampling, return_indices=True)
        out[z] = np.where(mask[z], seeds[z][iy, ix], 0)
    return out


class ComponentExtent(NamedTuple):
    """Where a component lies, in voxels of the full grid: mean position, inclusive 3-D box, per-slice boxes."""

    centre: tuple[float, float, float]
    bbox: tuple[int, int, int, int, int, int]
    """``(z0, y0, x0, z1, y1, x1)``, inclusive."""
    slices: dict[int, tuple[int, int, int, int]]
    """``z -> (y0, x0, y1, x1)``, inclusive."""


def component_extent(comp: np.ndarray, offset: Sequence[int]) -> ComponentExtent:
    """Centre, box and per-slice boxes of the True voxels of ``comp``, a crop whose first voxel is at ``offset``.

    Example:
        >>> m = np.zeros((2, 4, 4), bool); m[0, 1:3, 2] = True; m[1, 2, 1:4] = True
        >>> component_extent(m, (10, 0, 0))
        ComponentExtent(centre=(10.6, 1.8, 2.0), bbox=(10, 1, 1, 11, 2, 3), slices={10: (1, 2, 2, 2), 11: (2, 1, 2, 3)})
    """
    zz, yy, xx = np.nonzero(comp)
    off = np.asarray(offset)
    centre = tuple(float(c) for c in np.array([zz.mean(), yy.mean(), xx.mean()]) + off)
    lo = off + [zz.min(), yy.min(), xx.min()]
    hi = off + [zz.max(), yy.max(), xx.max()]
    slices = {}
    for z in np.unique(zz):
        sel = zz == z
        slices[int(z + off[0])] = (
            int(yy[sel].min() + off[1]),
            int(xx[sel].min() + off[2]),
            int(yy[sel].max() + off[1]),
            int(xx[sel].max() + off[2]),
        )
    return ComponentExtent(centre, (*(int(v) for v in lo), *(int(v) for v in hi)), slices)  # type: ignore[arg-type]
