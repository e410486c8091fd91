"""Foreground (body) masks and NeuroVFM's per-token background flags.

Example:
    >>> import numpy as np
    >>> ct = np.full((4, 32, 32), -1000, np.int16)
    >>> ct[:, 8:24, 8:24] = 40  # a soft-tissue block ...
    >>> ct[:, 14:18, 14:18] = -1000  # ... with an air hole inside
    >>> mask = foreground_mask(ct, "ct")
    >>> int(mask.sum()), bool(mask[0, 15, 15])
    (1024, True)
    >>> token_background_flags(mask, patch=(4, 16, 16)).tolist()
    [1, 1, 1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ctlens.core.volume import Volume
from ctlens.preprocess.mode import detect_mode
from ctlens.preprocess.tokens import _patch, grid_shape

__all__ = ["CT_THRESHOLD_HU", "MR_THRESHOLD_FRACTION", "foreground_mask", "mr_threshold", "token_background_flags"]

CT_THRESHOLD_HU = -500.0
"""CT voxels above this HU are tissue (NeuroVFM's threshold); air and lung below it."""
MR_THRESHOLD_FRACTION = 0.1
"""MR foreground: above this fraction of the 0.5--99.5 percentile range of the nonzero voxels."""


def mr_threshold(arr: np.ndarray, fraction: float = MR_THRESHOLD_FRACTION) -> float:
    """MR intensity threshold: ``p0.5 + fraction * (p99.5 - p0.5)`` over the nonzero finite voxels.

    This is where :func:`~ctlens.preprocess.windows.mr_normalize` reaches ``fraction``. Robust to a few
    very bright voxels and to zero padding; on an image without nonzero voxels it is ``inf``.

    Example:
        >>> import numpy as np
        >>> mr_threshold(np.repeat([0.0, 10.0, 110.0], 100), fraction=0.1), mr_threshold(np.zeros(3))
        (20.0, inf)
    """
    a = np.asarray(arr)
    values = a[np.isfinite(a) & (a != 0)]
    if values.size == 0:
        return float("inf")
    low, high = np.percentile(values, [0.5, 99.5])
    return float(low + fraction * (high - low))


def _plane_structure(slice_axis: int, connectivity: int) -> np.ndarray:
    """3x3 cross (connectivity 1) or square (2) in the slice plane, nothing across slices."""
    if slice_axis not in (0, 1, 2):
        raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis!r}")
    structure = np.zeros((3, 3, 3), bool)
    index: list[object] = [slice(None)] * 3
    index[slice_axis] = 1
    structure[tuple(index)] = ndimage.generate_binary_structure(2, connectivity)
    return structure


def foreground_mask(
    data: Volume | np.ndarray,
    mode: str | None = None,
    *,
    threshold: float | None = None,
    opening_iterations: int = 2,
    min_component_fraction: float = 0.1,
    fill_holes: bool = True,
    slice_axis: int = 0,
) -> np.ndarray:
    """Boolean body mask of a CT (HU) or MR volume / array ``[z, y, x]``.

    1. threshold: CT ``> -500 HU`` (NeuroVFM); MR ``>= mr_threshold(arr)`` (10 % up the robust
       intensity range of the nonzero voxels). ``threshold`` overrides either; ``mode=None`` detects
       CT / MR (:func:`~ctlens.preprocess.mode.detect_mode`);
    2. binary opening in the slice plane (``opening_iterations`` of a 3x3 square, i.e. a square of side
       ``2 * iterations + 1`` voxels) removes thin things: table shell, cables, noise specks;
    3. keep the largest 3-D connected component and any other at least ``min_component_fraction`` of
       its size (legs, arms); drop the rest (table, markers);
    4. give back thresholded voxels within ``opening_iterations`` steps *through the thresholded mask* of
       what was kept (thin body walls the opening cut, so lungs stay closed; detached objects stay out);
    5. fill holes slice by slice (lungs, bowel gas, dark MR tissue become foreground).

    ``slice_axis`` names the array axis that indexes slices (0 after
    :func:`~ctlens.preprocess.orientation.reorient`). An all-background image gives an all-False mask.

    Example:
        >>> import numpy as np
        >>> mr = np.zeros((2, 20, 20)); mr[:, 5:15, 5:15] = 100.0; mr[:, 0, 0] = 100.0  # body + one speck
        >>> m = foreground_mask(mr, "mri")
        >>> int(m.sum()), bool(m[0, 0, 0])
        (200, False)
    """
    arr = data.array if isinstance(data, Volume) else np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"foreground_mask needs a 3-D array [z, y, x], got shape {arr.shape}")
    if mode is None:
        mode = detect_mode(data)[0]
    mode = {"mr": "mri"}.get(mode.lower(), mode.lower())
    if mode not in ("ct", "mri"):
        raise ValueError(f"mode must be 'ct' or 'mri', got {mode!r}")
    if threshold is None:
        threshold = CT_THRESHOLD_HU if mode == "ct" else mr_threshold(arr)
    raw = np.asarray(arr > threshold) if mode == "ct" else np.asarray(arr >= threshold)
    if not raw.any():
        return raw
    mask = raw
    # n iterations of a 3x3 square = one (2n+1)^2 square: separable min / max filters, much faster
    # than iterated binary morphology
    side = [1, 1, 1]
    side[slice_axis] = 0
    box = tuple(2 * opening_iterations + 1 if s else 1 for s in side)
    if opening_iterations > 0:
        # cval=1 keeps voxels touching the array edge (a body cut by the field of view)
        opened = ndimage.minimum_filter(raw, size=box, mode="constant", cval=1)
        mask = ndimage.maximum_filter(opened, size=box, mode="constant", cval=0) & raw
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        keep = sizes >= max(1, min_component_fraction * sizes.max())
        keep[0] = False
        mask = keep[labels]
    elif count == 0:
        return mask
    if opening_iterations > 0:
        step = tuple(3 if s else 1 for s in side)
        for _ in range(opening_iterations):  # geodesic dilation: grow only through thresholded voxels
            mask = ndimage.maximum_filter(mask, size=step, mode="constant", cval=0) & raw
    if fill_holes:
        mask = fill_holes_per_slice(mask, slice_axis)
    return mask


def fill_holes_per_slice(mask: np.ndarray, slice_axis: int = 0) -> np.ndarray:
    """``mask`` with every background region that does not reach its slice's edge filled, slice by slice.

    Same result as ``ndimage.binary_fill_holes`` with an in-plane structure, in one labelling pass
    instead of a dilation iterated to convergence (about 5x faster on a chest CT).

    Example:
        >>> import numpy as np
        >>> ring = np.zeros((1, 5, 5), bool); ring[0, 1:4, 1:4] = True; ring[0, 2, 2] = False
        >>> int(fill_holes_per_slice(ring).sum())
        9
    """
    mask = np.asarray(mask, bool)
    labels, count = ndimage.label(~mask, _plane_structure(slice_axis, 1))
    if count == 0:
        return mask
    planes = np.moveaxis(labels, slice_axis, 0)
    edge = np.concatenate([planes[:, i].ravel() for i in (0, -1)] + [planes[:, :, i].ravel() for i in (0, -1)])
    reaches_edge = np.zeros(count + 1, bool)
    reaches_edge[edge] = True
    reaches_edge[0] = True  # label 0 is the mask itself
    return mask | ~reaches_edge[labels]


def token_background_flags(
    mask: np.ndarray, patch: Sequence[int] = (4, 16, 16), min_foreground_fraction: float = 1.0
) -> np.ndarray:
    """Per-token flag, uint8: 1 = background, 0 = foreground (NeuroVFM), in :func:`tokenize` order.

    A token is foreground when at least ``min_foreground_fraction`` of its voxels are foreground and at
    least one is. The default 1.0 is NeuroVFM's rule: any background voxel makes the token background;
    a small value (e.g. 0.05) keeps tokens at the body's edge.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((1, 2, 4), bool); m[0, :, :2] = True; m[0, 0, 2] = True
        >>> token_background_flags(m, (1, 2, 2)).tolist(), token_background_flags(m, (1, 2, 2), 0.25).tolist()
        ([0, 1], [0, 0])
    """
    if not 0.0 <= min_foreground_fraction <= 1.0:
        raise ValueError(f"min_foreground_fraction must be in [0, 1], got {min_foreground_fraction}")
    m = np.asarray(mask).astype(bool, copy=False)
    gz, gy, gx = grid_shape(m.shape, patch)
    pz, py, px = _patch(patch)
    counts = m.reshape(gz, pz, gy, py, gx, px).sum(axis=(1, 3, 5), dtype=np.int64).reshape(-1)
    needed = max(1.0, min_foreground_fraction * pz * py * px)
    return (counts < needed - 1e-9).astype(np.uint8)
