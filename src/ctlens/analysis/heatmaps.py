"""Calibrated heatmaps: each candidate's voxels carry its score, smoothed in-plane, peak = score.

A heatmap value is therefore read on the candidate-score scale of the method that produced it (not a
probability), and regions without candidates are 0.

Example:
    >>> import numpy as np
    >>> labels = np.zeros((1, 16, 16), np.int32); labels[0, 6:9, 6:9] = 1
    >>> h = candidate_heatmap(labels, {1: 0.8})
    >>> round(float(h.max()), 3), float(h[0, 0, 0]) < 0.05
    (0.8, True)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

__all__ = ["candidate_heatmap"]


def candidate_heatmap(labels: np.ndarray, scores: Mapping[int, float], sigma_px: float = 2.0) -> np.ndarray:
    """Float32 heatmap in [0, 1] from a label image and ``{label: score}`` (in-plane Gaussian ``sigma_px``)."""
    heat = np.zeros(labels.shape, np.float32)
    for label, score in scores.items():
        m = labels == label
        if not m.any():
            continue
        zz = np.nonzero(m.any(axis=(1, 2)))[0]
        ys = np.nonzero(m.any(axis=(0, 2)))[0]
        xs = np.nonzero(m.any(axis=(0, 1)))[0]
        pad = int(np.ceil(4 * sigma_px))
        sl = (
            slice(zz[0], zz[-1] + 1),
            slice(max(0, ys[0] - pad), ys[-1] + 1 + pad),
            slice(max(0, xs[0] - pad), xs[-1] + 1 + pad),
        )
        blob = ndimage.gaussian_filter(m[sl].astype(np.float32), sigma=(0, sigma_px, sigma_px))
        peak = float(blob.max())
        if peak > 0:
            np.maximum(heat[sl], blob / peak * float(np.clip(score, 0.0, 1.0)), out=heat[sl])
    return heat
