"""Baseline slice interpolation along array axis 0: nearest, linear and cubic B-spline.

All work slab by slab: nearest/linear touch two input slices per output slice; the cubic B-spline
prefilter (scipy ``spline_filter1d``, order 3, mirror boundary) runs on tiles of image rows, so
working memory is ``n_slices x rows_per_tile x width`` float64, never the whole volume twice.

Example:
    >>> import numpy as np
    >>> a = np.arange(3.0)[:, None, None] * np.ones((3, 2, 2))
    >>> interpolate_classic(a, np.array([0.0, 0.5, 2.0]), "linear", progress=False)[:, 0, 0].tolist()
    [0.0, 0.5, 2.0]
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ctlens.core.progress import ProgressCallback
from ctlens.pipelines.interp.progress import progress_iter

__all__ = ["CLASSIC_METHODS", "bspline3_weights", "interpolate_classic"]

CLASSIC_METHODS = ("nearest", "linear", "cubic")
ROW_TILE_BYTES = 64 * 2**20
"""Cubic B-spline: rows per tile chosen so one float64 tile of all slices stays under this size."""


def bspline3_weights(frac: float) -> np.ndarray:
    """Weights of the cubic B-spline for the four coefficients at offsets -1, 0, 1, 2 (Unser 1999, eq. 4).

    Example:
        >>> bspline3_weights(0.0).round(4).tolist()
        [0.1667, 0.6667, 0.1667, 0.0]
    """
    t = float(frac)
    return np.array([(1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6])


def _mirror(index: int, n: int) -> int:
    """scipy's 'mirror' boundary: ... 2 1 | 0 1 2 ... n-1 | n-2 ..."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    index = index % period
    return index if index < n else period - index


def interpolate_classic(
    array: np.ndarray, positions: np.ndarray, method: str, *, progress: bool | ProgressCallback = True
) -> np.ndarray:
    """Interpolate ``array`` [z, y, x] at continuous slice indices ``positions``; float32 [len(positions), y, x].

    Example:
        >>> import numpy as np
        >>> a = np.zeros((4, 1, 1)); a[2] = 1.0
        >>> interpolate_classic(a, np.array([1.6]), "nearest", progress=False).ravel().tolist()
        [1.0]
    """
    if method not in CLASSIC_METHODS:
        raise ValueError(f"method must be one of {CLASSIC_METHODS}, got {method!r}")
    n, height, width = array.shape
    positions = np.clip(np.asarray(positions, dtype=np.float64), 0, n - 1)
    out = np.empty((len(positions), height, width), np.float32)
    if method in ("nearest", "linear"):
        for k in progress_iter(range(len(positions)), f"{method} interpolation", enabled=progress):
            p = positions[k]
            if method == "nearest":
                out[k] = array[min(n - 1, int(np.floor(p + 0.5)))]
                continue
            i = min(int(np.floor(p)), n - 2) if n > 1 else 0
            t = p - i
            if t < 1e-9 or n == 1:
                out[k] = array[i]
            elif t > 1 - 1e-9:
                out[k] = array[i + 1]
            else:
                out[k] = (1 - t) * array[i].astype(np.float32) + t * array[i + 1].astype(np.float32)
        return out
    rows = max(1, int(ROW_TILE_BYTES // (8 * n * width)))
    tiles = range(0, height, rows)
    for y0 in progress_iter(tiles, "cubic B-spline interpolation", total=len(tiles), enabled=progress):
        coeffs = ndimage.spline_filter1d(
            np.asarray(array[:, y0 : y0 + rows], dtype=np.float64), order=3, axis=0, mode="mirror"
        )
        for k, p in enumerate(positions):
            i = int(np.floor(p))
            w = bspline3_weights(p - i)
            acc = np.zeros(coeffs.shape[1:], np.float64)
            for offset, weight in zip((-1, 0, 1, 2), w, strict=True):
                if weight != 0.0:
                    acc += weight * coeffs[_mirror(i + offset, n)]
            out[k, y0 : y0 + rows] = acc
    return out
