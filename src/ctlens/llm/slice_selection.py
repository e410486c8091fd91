"""Which slices of a series to show: one streaming pass for per-slice facts, then coverage-plus-score selection.

:func:`scan_slices` reads the volume a few slices at a time (a ``numpy.memmap`` stays on disk), on a grid
subsampled to about 128 px, and records per slice: the body's in-plane box (largest connected region above
-500 HU), the body area, the lung-field fraction (air inside the filled body) and a detail score (mean of
:func:`ctlens.codec.roi.roi_score` inside the body). :func:`select_slices` keeps the slices the caller must show
(lesion candidates) and fills the rest by coverage: the body's slices are split into equal runs and the most
detailed slice of each run is taken. :func:`peak_slices` picks a few key slices from an analysis heatmap (the
chat's images when no payload can be built).

Example:
    >>> import numpy as np
    >>> vol = np.full((6, 64, 64), -1000, np.int16); vol[:, 16:48, 12:52] = 40
    >>> stats = scan_slices(vol)
    >>> stats.body_box, select_slices(stats, 3)
    ((16, 48, 12, 52), [0, 2, 4])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["SliceStats", "peak_slices", "scan_slices", "select_slices"]

BODY_HU = -500.0
"""Pixels above this are tissue (air and lung are below)."""
SCAN_TARGET_PX = 128
"""The scan subsamples each slice to about this many pixels on its long side."""


@dataclass
class SliceStats:
    """Per-slice facts from :func:`scan_slices` (arrays of length ``n_slices``)."""

    n_slices: int
    shape_yx: tuple[int, int]
    body_fraction: np.ndarray
    lung_fraction: np.ndarray
    detail: np.ndarray
    body_box: tuple[int, int, int, int]
    """``(y0, y1, x0, x1)``, half-open voxel bounds of the body over all slices (whole slice when none)."""

    def score(self) -> np.ndarray:
        """Priority of each slice in [0, 1]: detail, raised where lung fields are present."""
        return np.clip(0.7 * self.detail / max(float(self.detail.max()), 1e-6) + 0.3 * self.lung_fraction, 0, 1)


def _detail_score(block: np.ndarray) -> np.ndarray:
    try:  # the codec layer's ROI score (gradient + local variance) when present
        from ctlens.codec.roi import roi_score
    except ImportError:  # pragma: no cover - the codec layer ships with ctlens
        gy, gx = np.gradient(block.astype(np.float32), axis=(1, 2))
        return -np.expm1(-np.hypot(gy, gx) / 100.0)
    return roi_score(block, window=3)


def scan_slices(
    array: np.ndarray,
    *,
    chunk: int = 16,
    advance: Callable[[int], None] | None = None,
) -> SliceStats:
    """One pass over ``array`` ``[z, y, x]`` (HU), ``chunk`` slices at a time; see the module docstring.

    ``advance(n)`` is called after each chunk (for a progress bar).
    """
    nz, ny, nx = (int(s) for s in array.shape)
    stride = max(1, int(round(max(ny, nx) / SCAN_TARGET_PX)))
    body_fraction = np.zeros(nz, np.float32)
    lung_fraction = np.zeros(nz, np.float32)
    detail = np.zeros(nz, np.float32)
    rows = np.zeros(ny, bool)
    cols = np.zeros(nx, bool)
    structure = ndimage.generate_binary_structure(2, 1)
    for z0 in range(0, nz, chunk):
        block = np.asarray(array[z0 : z0 + chunk, ::stride, ::stride], dtype=np.float32)
        score = _detail_score(block)
        for i, hu in enumerate(block):
            tissue = hu > BODY_HU
            labels, n = ndimage.label(tissue, structure=structure)
            if n == 0:
                continue
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            body = labels == int(sizes.argmax())
            if body.sum() < 0.005 * body.size:
                continue
            filled = ndimage.binary_fill_holes(body)
            k = z0 + i
            body_fraction[k] = filled.mean()
            lung_fraction[k] = (filled & ~body).sum() / max(filled.sum(), 1)
            detail[k] = float(score[i][filled].mean())
            ys, xs = np.nonzero(filled.any(axis=1))[0], np.nonzero(filled.any(axis=0))[0]
            rows[ys[0] * stride : min((ys[-1] + 1) * stride, ny)] = True
            cols[xs[0] * stride : min((xs[-1] + 1) * stride, nx)] = True
        if advance is not None:
            advance(block.shape[0])
    if rows.any() and cols.any():
        ry, rx = np.nonzero(rows)[0], np.nonzero(cols)[0]
        margin = stride if stride > 1 else 0  # a subsampled grid can miss up to one stride of body
        box = (
            max(int(ry[0]) - margin, 0),
            min(int(ry[-1]) + 1 + margin, ny),
            max(int(rx[0]) - margin, 0),
            min(int(rx[-1]) + 1 + margin, nx),
        )
    else:
        box = (0, ny, 0, nx)
    return SliceStats(nz, (ny, nx), body_fraction, lung_fraction, detail, box)


def select_slices(stats: SliceStats, count: int, must: Sequence[int] = ()) -> list[int]:
    """``count`` slice indices (sorted): every ``must`` slice first, then coverage of the body by score.

    Slices without body are used only when no slice has body.

    Example:
        >>> import numpy as np
        >>> s = SliceStats(10, (8, 8), np.ones(10), np.zeros(10), np.arange(10.0), (0, 8, 0, 8))
        >>> select_slices(s, 3, must=[0])
        [0, 5, 9]
    """
    present = [k for k in range(stats.n_slices) if stats.body_fraction[k] > 0] or list(range(stats.n_slices))
    chosen: list[int] = []
    for k in must:
        if 0 <= k < stats.n_slices and k not in chosen and len(chosen) < count:
            chosen.append(int(k))
    rest = [k for k in present if k not in chosen]
    room = count - len(chosen)
    if room >= len(rest):
        return sorted(chosen + rest)
    if room > 0:
        score = stats.score()
        for run in np.array_split(np.asarray(rest), room):
            if run.size:
                chosen.append(int(run[int(np.argmax(score[run]))]))
    return sorted(chosen)


def peak_slices(heatmap: np.ndarray | None, n_slices: int, count: int = 3) -> list[int]:
    """Up to ``count`` slices (sorted) with the hottest heatmap peaks, at least a tenth of the series apart; evenly
    spread slices when there is no heatmap or it has fewer than ``count`` separate peaks.

    Example:
        >>> heat = np.zeros((20, 4, 4), np.uint8); heat[3, 1, 1] = 200; heat[15, 2, 2] = 90; heat[4, 0, 0] = 80
        >>> peak_slices(heat, 20, count=2), peak_slices(None, 20)
        ([3, 15], [5, 10, 14])
    """
    if heatmap is not None and n_slices > 1:
        peaks = np.asarray(heatmap).reshape(n_slices, -1).max(axis=1)
        order = [int(k) for k in np.argsort(-peaks, kind="stable") if peaks[k] > 0]
        chosen: list[int] = []
        for k in order:
            if all(abs(k - c) > max(1, n_slices // 10) for c in chosen):
                chosen.append(k)
            if len(chosen) == count:
                return sorted(chosen)
    return sorted({int(round(x)) for x in np.linspace(0, n_slices - 1, min(count, n_slices) + 2)[1:-1]} or {0})
