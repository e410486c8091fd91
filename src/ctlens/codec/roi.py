"""Regions of interest: where a CT slice holds detail (edges, texture) rather than flat background.

The detail measure combines two classical cues computed in-plane, slice by slice:

* gradient magnitude (Sobel, scaled to HU per pixel), which marks organ and bone boundaries;
* local standard deviation in a ``window`` x ``window`` neighbourhood, which marks texture (lung vessels,
  trabecular bone) that a single gradient may miss.

Each cue is mapped to [0, 1) with ``1 - exp(-value / scale)`` (``scale`` in HU, default 100 HU, i.e. well above
CT quantum noise of about 10-20 HU in soft tissue) and the two are averaged: :func:`roi_score`.
:func:`detect_roi` thresholds that score at a per-slice percentile, removes speckle (opening, small objects),
optionally fills holes, and dilates by ``dilation_mm`` (a square margin in-plane) so the region keeps some context.
3-D input ``[z, y, x]`` is processed per slice but vectorised over the whole array (no Python loop over slices).

Example:
    >>> import numpy as np
    >>> img = np.full((64, 64), -1000, dtype=np.int16)
    >>> img[20:44, 20:44] = 40
    >>> mask = detect_roi(img, dilation_mm=2.0)
    >>> bool(mask[20, 32]), bool(mask[2, 2])
    (True, False)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["detect_roi", "roi_score"]

DEFAULT_PERCENTILE = 75.0
"""Pixels above this per-slice percentile of the detail score seed the ROI (so about 25 % before dilation)."""
DEFAULT_DILATION_MM = 5.0
"""Context kept around each detected structure, in mm (in-plane)."""
DEFAULT_MIN_SIZE = 32
"""Connected seed components smaller than this many pixels (per slice) are dropped as noise."""


def _as_3d(hu: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(hu)
    if arr.ndim == 2:
        return arr[None], True
    if arr.ndim == 3:
        return arr, False
    raise ValueError(f"expected a 2-D [y, x] or 3-D [z, y, x] array, got shape {arr.shape}")


def _sobel2d(f: np.ndarray, axis: int) -> np.ndarray:
    other = 2 if axis == 1 else 1
    diff = ndimage.correlate1d(f, [-1.0, 0.0, 1.0], axis=axis, mode="nearest")
    return ndimage.correlate1d(diff, [1.0, 2.0, 1.0], axis=other, mode="nearest")


def roi_score(hu: np.ndarray, *, window: int = 5, scale_hu: float = 100.0) -> np.ndarray:
    """Detail score in [0, 1] (float32, same shape as ``hu``): mean of saturated gradient and local std.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((32, 32), dtype=np.int16); img[:, 16:] = 500
        >>> s = roi_score(img)
        >>> s.dtype.name, float(s[5, 2]), bool(s[5, 16] > 0.5)
        ('float32', 0.0, True)
    """
    vol, squeeze = _as_3d(hu)
    f = vol.astype(np.float32, copy=False)
    # Sobel sums 4 weighted differences over 2 pixels: divide by 8 to get HU per pixel.
    # (ndimage.sobel would also smooth across z; the 2-D kernel is applied as two 1-D passes per axis instead.)
    gy = _sobel2d(f, axis=1) / 8.0
    gx = _sobel2d(f, axis=2) / 8.0
    grad = np.hypot(gy, gx)
    del gy, gx
    size = (1, window, window)
    mean = ndimage.uniform_filter(f, size=size, mode="nearest")
    mean_sq = ndimage.uniform_filter(f * f, size=size, mode="nearest")
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    del mean, mean_sq
    score = 0.5 * (-np.expm1(-grad / scale_hu)) + 0.5 * (-np.expm1(-std / scale_hu))
    score = np.clip(score, 0.0, 1.0).astype(np.float32, copy=False)
    return score[0] if squeeze else score


def detect_roi(
    hu: np.ndarray,
    percentile: float = DEFAULT_PERCENTILE,
    dilation_mm: float = DEFAULT_DILATION_MM,
    spacing: Sequence[float] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    *,
    window: int = 5,
    fill_holes: bool = False,
) -> np.ndarray:
    """Boolean ROI mask (same shape as ``hu``, 2-D ``[y, x]`` or 3-D ``[z, y, x]``), computed per slice.

    ``percentile``: per-slice threshold on :func:`roi_score` (0-100; higher keeps less). ``dilation_mm``: context
    margin, converted to pixels with ``spacing`` (``(y, x)`` or ``(z, y, x)`` mm; 1 mm pixels when None).
    ``min_size``: smallest seed component kept, in pixels. A flat slice gives an empty mask.

    Example:
        >>> import numpy as np
        >>> vol = np.full((2, 48, 48), -1000, dtype=np.int16); vol[1, 10:30, 10:30] = 60
        >>> m = detect_roi(vol, spacing=(5.0, 0.5, 0.5), dilation_mm=1.0)
        >>> m.shape, bool(m[0].any()), bool(m[1, 10, 20])
        ((2, 48, 48), False, True)
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {percentile}")
    vol, squeeze = _as_3d(hu)
    score = roi_score(vol, window=window)
    nz = vol.shape[0]
    thresholds = np.percentile(score.reshape(nz, -1), percentile, axis=1).astype(np.float32)
    seeds = score > thresholds[:, None, None]
    del score
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    seeds = ndimage.binary_opening(seeds, structure=plane)
    if min_size > 1 and seeds.any():
        labels, n = ndimage.label(seeds, structure=plane)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        keep = sizes >= min_size
        keep[0] = False
        seeds = keep[labels]
        del labels
    if fill_holes and seeds.any():
        seeds = ndimage.binary_fill_holes(seeds, structure=plane)
    if dilation_mm > 0 and seeds.any():
        sy, sx = (1.0, 1.0) if spacing is None else (float(spacing[-2]), float(spacing[-1]))
        # Square (Chebyshev) margin of dilation_mm along each in-plane axis: two separable 1-D max filters,
        # O(n) whatever the radius (a Euclidean distance transform was 5x slower on 512x512 slices).
        mask = seeds.view(np.uint8)
        for axis, step in ((1, sy), (2, sx)):
            radius = int(round(dilation_mm / step))
            if radius > 0:
                mask = ndimage.maximum_filter1d(mask, size=2 * radius + 1, axis=axis, mode="constant")
        mask = mask.astype(bool)
    else:
        mask = seeds
    return mask[0] if squeeze else mask
