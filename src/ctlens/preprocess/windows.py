"""CT intensity windows and MR intensity normalization, both to float32 in ``[0, 1]``; windowed uint8 display pixels.

Example:
    >>> import numpy as np
    >>> apply_window(np.array([0, 40, 80, 1000]), "brain").tolist()
    [0.0, 0.5, 1.0, 1.0]
    >>> to_display_uint8(np.array([0, 40, 80, 1000]), *window_limits("brain")).tolist()
    [0, 128, 255, 255]
    >>> mr_normalize(np.array([0, 10, 20, 30])).round(2).tolist()
    [0.0, 0.0, 0.5, 1.0]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["WINDOWS", "apply_window", "mr_normalize", "to_display_uint8", "window_limits"]

WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (80.0, 40.0),
    "blood": (200.0, 80.0),
    "bone": (2800.0, 600.0),
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 40.0),
    "soft_tissue": (400.0, 40.0),
}
"""Named CT windows as ``(width, level)`` in HU. brain / blood / bone are NeuroVFM's three CT channels."""


def _width_level(window: str | tuple[float, float]) -> tuple[float, float]:
    """``(width, level)`` of a window name from :data:`WINDOWS` or of a ``(width, level)`` pair; width > 0."""
    if isinstance(window, str):
        if window not in WINDOWS:
            raise ValueError(f"unknown CT window {window!r}; known: {', '.join(WINDOWS)} or a (width, level) pair")
        width, level = WINDOWS[window]
    else:
        width, level = (float(v) for v in window)
    if not width > 0:
        raise ValueError(f"window width must be positive, got {width}")
    return width, level


def window_limits(window: str | tuple[float, float]) -> tuple[float, float]:
    """``(lo, hi)`` HU of a named window or a ``(width, level)`` pair: ``level -/+ width / 2``.

    Example:
        >>> window_limits("lung"), window_limits((400, 40))
        ((-1350.0, 150.0), (-160.0, 240.0))
    """
    width, level = _width_level(window)
    return level - width / 2, level + width / 2


def to_display_uint8(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Display pixels: ``[lo, hi]`` -> ``0..255`` linearly, clipped, rounded half up; uint8, same shape.

    The one grey-level rule for every PNG and tile ctlens draws. The arithmetic is float32; for a named
    window and ``lo, hi = window_limits(name)`` it equals ``apply_window(a, name) * 255 + 0.5`` floored.
    NaN gives 0, ``+inf`` 255, ``-inf`` 0. ``lo == hi`` is a step: values above ``lo`` are 255, the rest 0
    (a constant image is black). ``hi < lo`` or non-finite limits raise ``ValueError``.

    Example:
        >>> import numpy as np
        >>> to_display_uint8(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]), 0, 1).tolist()
        [0, 0, 128, 255, 255, 0]
        >>> to_display_uint8(np.array([[3, 5, 7]], np.int16), 5, 5).tolist()
        [[0, 0, 255]]
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi >= lo):
        raise ValueError(f"display limits need finite lo <= hi, got lo={lo}, hi={hi}")
    out = np.subtract(array, lo, dtype=np.float32)
    if hi > lo:
        out /= np.float32(hi - lo)
    else:
        out = np.greater(out, 0).astype(np.float32)
    np.fmax(out, 0.0, out=out)  # fmax / fmin (not clip): NaN becomes 0 in the same pass
    np.fmin(out, 1.0, out=out)
    out *= np.float32(255.0)
    out += np.float32(0.5)
    return out.astype(np.uint8)


def apply_window(hu: np.ndarray, window: str | tuple[float, float]) -> np.ndarray:
    """Map HU linearly so ``level - width/2 -> 0`` and ``level + width/2 -> 1``, clipped; float32.

    ``window`` is a name from :data:`WINDOWS` or a ``(width, level)`` pair.

    Example:
        >>> import numpy as np
        >>> apply_window(np.array([-1350.0, -600.0, 150.0]), "lung").tolist()
        [0.0, 0.5, 1.0]
        >>> apply_window(np.array([0, 50, 100]), (100, 50)).tolist()
        [0.0, 0.5, 1.0]
    """
    width, level = _width_level(window)
    low = level - width / 2
    out = np.subtract(hu, low, dtype=np.float32)
    out /= np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)


def mr_normalize(arr: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Clip to the ``low``-th / ``high``-th percentiles of the **nonzero** voxels, then scale to ``[0, 1]``.

    Zero voxels (background, padding) do not move the percentiles. A constant image (or one with no
    nonzero finite voxel) gives zeros; non-finite voxels give 0. Returns float32.

    Example:
        >>> import numpy as np
        >>> mr_normalize(np.full((2, 2), 7.0)).tolist()
        [[0.0, 0.0], [0.0, 0.0]]
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    a = np.asarray(arr)
    finite = np.isfinite(a)
    values = a[finite & (a != 0)]
    out = np.zeros(a.shape, dtype=np.float32)
    if values.size == 0:
        return out
    p_low, p_high = np.percentile(values, [low, high])
    if not p_high > p_low:
        return out
    np.subtract(np.clip(a, p_low, p_high), p_low, out=out, casting="unsafe")
    out /= np.float32(p_high - p_low)
    out[~finite] = 0.0
    return np.clip(out, 0.0, 1.0, out=out)
