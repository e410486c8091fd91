"""Scores for slice interpolation: PSNR on the papers' HU range, in a body mask, and SSIM.

Convention (SAINT / TVSRN / I3Net papers): HU clipped to [-1024, 3071] and mapped linearly to [0, 1];
PSNR = 10 log10(1 / MSE). An exact copy gives ``inf`` (kept as ``inf``, written as ``"inf"`` in JSON).
Non-finite predicted voxels count as the largest possible error (1.0) and are reported; non-finite
ground-truth voxels are left out. SSIM is scikit-image's ``structural_similarity`` (data_range 1) per
slice, averaged.

Example:
    >>> import numpy as np
    >>> gt = np.zeros((2, 8, 8)); pred = gt.copy(); pred[0, 0, 0] = 4095
    >>> psnr(gt, gt), round(psnr(pred, gt), 2)
    (inf, 23.57)
"""

from __future__ import annotations

import math

import numpy as np

from ctlens.data.slice_profiles import HU_RANGE

__all__ = ["HU_RANGE", "hu_to_unit", "nonfinite_count", "psnr", "ssim"]


def hu_to_unit(hu: np.ndarray) -> np.ndarray:
    """HU -> [0, 1] on [-1024, 3071] (clipped); NaN stays NaN, +-inf clip to 1 / 0.

    Example:
        >>> hu_to_unit(np.array([-2000.0, -1024.0, 3071.0])).tolist()
        [0.0, 0.0, 1.0]
    """
    low, high = HU_RANGE
    return np.clip((np.asarray(hu, np.float64) - low) / (high - low), 0.0, 1.0)


def nonfinite_count(pred: np.ndarray) -> int:
    """Number of NaN / inf voxels in a prediction.

    Example:
        >>> nonfinite_count(np.array([1.0, np.nan, np.inf]))
        2
    """
    return int(np.size(pred) - np.count_nonzero(np.isfinite(pred)))


def psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of ``pred`` vs ``gt`` (both HU) on [-1024, 3071] -> [0, 1], optionally within ``mask``.

    Returns ``inf`` for an exact match and ``nan`` when nothing is left to score.

    Example:
        >>> import numpy as np
        >>> round(psnr(np.full(4, 3071.0), np.full(4, -1024.0)), 1), psnr(np.full(2, np.nan), np.full(2, 0.0))
        (0.0, 0.0)
    """
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    keep = np.isfinite(g)
    if mask is not None:
        keep &= np.asarray(mask, bool)
    if not keep.any():
        return math.nan
    pu = hu_to_unit(p[keep])
    gu = hu_to_unit(g[keep])
    err = np.where(np.isfinite(p[keep]), pu - gu, 1.0)
    mse = float(np.mean(err * err))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean 2-D SSIM over slices (axis 0) on the [0, 1] HU mapping; non-finite predictions become 0.

    Example:
        >>> import numpy as np
        >>> g = np.random.default_rng(0).uniform(-1000, 1000, (2, 16, 16))
        >>> ssim(g, g)
        1.0
    """
    from skimage.metrics import structural_similarity

    p = np.nan_to_num(hu_to_unit(pred), nan=0.0)
    g = np.nan_to_num(hu_to_unit(gt), nan=0.0)
    scores = []
    for ps, gs in zip(p, g, strict=True):
        win = min(7, *ps.shape)
        win -= 1 - win % 2  # odd
        if win < 3:
            continue
        scores.append(structural_similarity(gs, ps, data_range=1.0, win_size=win))
    return float(np.mean(scores)) if scores else math.nan
