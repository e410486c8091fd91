"""Simulate thick slices from thin ones: dropped slices (as the papers do) or slab averages (as scanners do).

* ``drop``: keep every ``factor``-th thin slice -- what SAINT, TVSRN and I3Net evaluate on, although no
  scanner makes such slices.
* ``slab``: each thick slice is a weighted average of the thin slices around its centre with a slice
  sensitivity profile of FWHM = the thick slice spacing. Spiral CT profiles are close to Gaussian
  (180-degree linear interpolation gives a triangle-like profile widening towards a Gaussian with
  z-filtering): Polacin, Kalender, Marchal, "Evaluation of section sensitivity profiles and image noise
  in spiral CT", Radiology 185 (1992) 29-35; Kalender, "Computed Tomography", 3rd ed. (2011), ch. 2.
  ``profile="gaussian"`` (default, sigma = FWHM / 2.3548, truncated at +-FWHM) or ``"triangle"``
  (half width = FWHM). Weights are renormalised at the ends of the stack.

Thick slice ``k`` is centred on thin slice ``k * factor``; ``keep`` thick slices need
``(keep - 1) * factor + 1`` thin slices. numpy only (no torch), so the evaluation harness and the
training dataset simulate the same way.

Example:
    >>> import numpy as np
    >>> thin = np.arange(9.0)[:, None, None] * np.ones((9, 2, 2))
    >>> simulate_thick(thin, 4, "drop")[:, 0, 0].tolist()
    [0.0, 4.0, 8.0]
    >>> float(simulate_thick(thin, 4, "slab")[1, 0, 0])  # symmetric profile around slice 4 of a ramp
    4.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["HU_RANGE", "SIMULATIONS", "slab_weights", "simulate_thick", "thick_count"]

HU_RANGE = (-1024.0, 3071.0)
"""HU window of the slice-interpolation papers (SAINT, TVSRN, I3Net): mapped to [0, 1] for scores and models."""

SIMULATIONS = ("drop", "slab")
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def thick_count(n_thin: int, factor: int) -> int:
    """Number of thick slices one can simulate from ``n_thin`` thin slices.

    Example:
        >>> thick_count(10, 4)
        3
    """
    return (n_thin - 1) // int(factor) + 1


def slab_weights(factor: int, profile: str = "gaussian") -> np.ndarray:
    """Slice-profile weights at thin offsets ``-r .. r`` (sum 1), FWHM = ``factor`` thin spacings.

    Example:
        >>> slab_weights(2, "triangle").round(3).tolist()
        [0.0, 0.25, 0.5, 0.25, 0.0]
    """
    fwhm = float(factor)
    radius = int(np.ceil(fwhm))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    if profile == "gaussian":
        weights = np.exp(-0.5 * (offsets / (fwhm * FWHM_TO_SIGMA)) ** 2)
    elif profile == "triangle":
        weights = np.clip(1.0 - np.abs(offsets) / fwhm, 0.0, None)
    else:
        raise ValueError(f"profile must be 'gaussian' or 'triangle', got {profile!r}")
    return weights / weights.sum()


def simulate_thick(thin: np.ndarray, factor: int, mode: str = "slab", profile: str = "gaussian") -> np.ndarray:
    """Thick slices (float32 ``[thick_count, y, x]``) from ``thin`` ``[z, y, x]`` by ``mode`` drop | slab.

    Example:
        >>> import numpy as np
        >>> simulate_thick(np.ones((5, 1, 1)), 2, "slab").ravel().round(6).tolist()  # ends renormalised
        [1.0, 1.0, 1.0]
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if mode not in SIMULATIONS:
        raise ValueError(f"mode must be one of {SIMULATIONS}, got {mode!r}")
    n = thin.shape[0]
    keep = thick_count(n, factor)
    if mode == "drop":
        return np.asarray(thin[: (keep - 1) * factor + 1 : factor], np.float32)
    weights = slab_weights(factor, profile)
    radius = len(weights) // 2
    out = np.empty((keep, *thin.shape[1:]), np.float32)
    for k in range(keep):
        centre = k * factor
        acc = np.zeros(thin.shape[1:], np.float64)
        total = 0.0
        for j, w in zip(range(centre - radius, centre + radius + 1), weights, strict=True):
            if 0 <= j < n and w > 0:
                acc += w * np.asarray(thin[j], np.float64)
                total += w
        out[k] = acc / total
    return out
