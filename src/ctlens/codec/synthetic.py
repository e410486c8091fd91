"""Deterministic synthetic CT slices for codec tests and benchmarks (no real data needed).

Slice ``k``: air (-1000 HU) around a round soft-tissue body whose values vary smoothly with ``k`` and ``x``
(40 +- 20 HU) plus uniform integer noise of +-25 HU seeded by ``k``, so neighbouring slices are alike but
never equal, as in a real series.

Example:
    >>> s = synthetic_slice(3, size=64)
    >>> s.dtype, s.shape, int(s[0, 0]), bool((s == synthetic_slice(3, size=64)).all())
    (dtype('int16'), (64, 64), -1000, True)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["synthetic_slice", "synthetic_slices"]


def synthetic_slice(k: int, size: int = 512) -> np.ndarray:
    """Slice ``k`` (int16 HU, ``size`` x ``size``) of the synthetic series described in the module docstring."""
    yy, xx = np.mgrid[:size, :size]
    body = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.45 * size) ** 2
    noise = np.random.default_rng(k).integers(-25, 26, (size, size))
    return np.where(body, 40 + np.round(20 * np.sin(k / 9 + xx / 17)) + noise, -1000).astype(np.int16)


def synthetic_slices(n: int, size: int = 512) -> Iterator[np.ndarray]:
    """Slices ``0 .. n-1``, generated one at a time (a stream that never holds the whole series).

    Example:
        >>> [s.shape for s in synthetic_slices(2, size=8)]
        [(8, 8), (8, 8)]
    """
    for k in range(n):
        yield synthetic_slice(k, size)
