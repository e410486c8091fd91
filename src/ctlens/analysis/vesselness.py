"""Blob or tube? Multi-scale Hessian shape measures that tell nodules and masses from vessel segments.

For a bright structure on a dark background the Hessian of the Gaussian-smoothed image has, inside it,
eigenvalues ``l3 <= l2 <= l1`` (sorted by value): a tube (vessel) has ``l3, l2 << 0`` and ``l1 ~ 0`` (no
curvature along its axis), a blob (nodule) has all three strongly negative (Sato et al., Med Image Anal 1998;
Frangi et al., MICCAI 1998; Li, Sone & Doi, Med Phys 2003 use the same eigenvalue signatures to enhance
nodules and suppress vessels). With the scale normalisation ``sigma**2`` (Lindeberg 1998) and the contrast
``CONTRAST_HU`` (soft tissue against aerated lung), per voxel and over the scales ``SCALES_MM``:

* ``blob = max_sigma sigma**2 * max(-l1, 0) / CONTRAST_HU`` (0 for a perfect tube);
* ``tube = max_sigma sigma**2 * max(-l2, 0) / CONTRAST_HU``.

A voxel is a *blob voxel* when ``blob >= BLOB_RATIO * tube`` and ``blob >= BLOB_FLOOR``. The thresholds come
from synthetic shapes (tests/analysis/test_vessels.py, docs/analysis.md) at 1.25-8 mm slices: spheres of 9-25 mm
radius and hemispheres on a wall have 49-83 % blob voxels; straight, oblique, bent, crossing, T-, Y- and
trifurcating tubes of 3-10 mm radius at most 16 % (their junctions and crossings, up to 3 mL in all).

The image is clipped to ``CLIP_HU`` first, so contrast-filled vessels (200-400 HU) and bone do not outweigh
soft tissue, and large scales are computed on an in-plane block-mean copy (cost independent of the scale).

Example:
    >>> import numpy as np
    >>> z, y, x = np.meshgrid(*[np.arange(-20, 21) * 1.5] * 3, indexing="ij", sparse=True)
    >>> ball = z**2 + y**2 + x**2 <= 10.0**2
    >>> rod = np.broadcast_to(y**2 + x**2 <= 5.0**2, ball.shape)
    >>> f = lambda m: round(float(blob_voxels(np.where(m, 40.0, -850.0), (1.5,) * 3, m)[m].mean()), 1)
    >>> f(ball) > 0.4, f(rod)
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["BLOB_FLOOR", "BLOB_RATIO", "CLIP_HU", "CONTRAST_HU", "SCALES_MM", "blob_tube", "blob_voxels"]

SCALES_MM = (3.0, 4.5, 6.5, 9.0, 13.0, 18.0)
"""Gaussian scales (mm): blob radii of about 5-30 mm peak at ``sigma = r / sqrt(3)``."""
CONTRAST_HU = 900.0
CLIP_HU = (-1000.0, 50.0)
BLOB_RATIO = 0.3
BLOB_FLOOR = 0.02
_TRUNCATE = 3.0


def _block_mean_yx(img: np.ndarray, f: int) -> np.ndarray:
    """In-plane block mean by ``f`` (edges padded)."""
    if f == 1:
        return img
    nz, ny, nx = img.shape
    py, px = -ny % f, -nx % f
    a = np.pad(img, ((0, 0), (0, py), (0, px)), mode="edge") if py or px else img
    return a.reshape(nz, (ny + py) // f, f, (nx + px) // f, f).mean(axis=(2, 4), dtype=np.float32)


def blob_tube(
    hu: np.ndarray, spacing: Sequence[float], mask: np.ndarray, scales: Sequence[float] = SCALES_MM
) -> tuple[np.ndarray, np.ndarray]:
    """``(blob, tube)`` (module docs) at the voxels of ``mask``, in ``np.nonzero(mask)`` order.

    ``hu`` should extend about ``2 * max(scales)`` mm beyond ``mask`` where the image allows.

    Example:
        >>> import numpy as np
        >>> img = np.full((9, 9, 9), -850.0); img[4, 4, :] = 40.0   # a thin rod along x
        >>> b, t = blob_tube(img, (1.0, 1.0, 1.0), img > 0, scales=(1.0,))
        >>> bool(t.min() > 5 * b.max())
        True
    """
    spacing = tuple(float(s) for s in spacing)
    img = np.clip(np.asarray(hu, np.float32), *CLIP_HU)
    idx = np.nonzero(mask)
    blob = np.zeros(idx[0].size, np.float32)
    tube = np.zeros(idx[0].size, np.float32)
    if idx[0].size == 0:
        return blob, tube
    for s in scales:
        f = max(1, int(s / (2.5 * min(spacing[1:]))))
        work = _block_mean_yx(img, f)
        sp = (spacing[0], spacing[1] * f, spacing[2] * f)
        sigma = [max(s / sp[0], 0.5), s / sp[1], s / sp[2]]
        smooth = ndimage.gaussian_filter(work, sigma, truncate=_TRUNCATE)
        at = (idx[0], np.minimum(idx[1] // f, work.shape[1] - 1), np.minimum(idx[2] // f, work.shape[2] - 1))
        hess = np.zeros((idx[0].size, 3, 3), np.float32)
        if min(smooth.shape) > 1:
            # second differences reach 2 voxels: the mask's box grown by 2 gives the same values as the whole box
            lo = [max(0, int(a.min()) - 2) for a in at]
            crop = smooth[tuple(slice(a, int(b.max()) + 3) for a, b in zip(lo, at, strict=True))]
            at = tuple(a - o for a, o in zip(at, lo, strict=True))
            for i in range(3):
                first = np.gradient(crop, sp[i], axis=i)
                for j in range(i, 3):
                    hess[:, i, j] = hess[:, j, i] = np.gradient(first, sp[j], axis=j)[at]
        ev = np.linalg.eigvalsh(hess) * np.float32(s * s / CONTRAST_HU)
        np.maximum(blob, -ev[:, 2], out=blob)
        np.maximum(tube, -ev[:, 1], out=tube)
    return blob, tube


def blob_voxels(hu: np.ndarray, spacing: Sequence[float], mask: np.ndarray) -> np.ndarray:
    """Boolean image: the voxels of ``mask`` that are blob-like (module docs), same shape as ``mask``."""
    blob, tube = blob_tube(hu, spacing, mask)
    out = np.zeros(mask.shape, bool)
    out[np.nonzero(mask)] = (blob >= BLOB_RATIO * tube) & (blob >= BLOB_FLOOR)
    return out
