"""The working grid of the analysis: block-mean downsampling to about 1.3 mm in-plane, and back.

Morphology and labelling cost grows with the voxel count, so the detectors run on a coarser grid: each
axis is reduced by an integer factor ``max(1, round(target / spacing))`` (block mean over ``f`` voxels),
the default targets being 1.25 mm in-plane and 4 mm along the slices (an axis is reduced only when its
spacing is at most 2/3 of the target: 3 mm slices stay, 0.8 mm slices become 4 mm, 0.65 mm pixels
1.3 mm). Masks come back to the input grid
by repetition (nearest neighbour), so measurements that need full resolution (LAA-950) stay exact.

Example:
    >>> import numpy as np
    >>> g = AnalysisGrid.for_spacing((1.0, 0.625, 0.625), (12, 8, 8))
    >>> g.factors, g.shape
    ((4, 2, 2), (3, 4, 4))
    >>> g.upsample(np.ones(g.shape, bool)).shape
    (12, 8, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AnalysisGrid", "TARGET_SPACING_MM"]

TARGET_SPACING_MM = (4.0, 1.25, 1.25)
"""Target working spacing (z, y, x) in mm; an axis is reduced only when at most 2/3 of its target."""


@dataclass(frozen=True)
class AnalysisGrid:
    """Integer block factors ``(fz, fy, fx)`` between the input grid and the working grid."""

    factors: tuple[int, int, int]
    input_shape: tuple[int, int, int]
    input_spacing: tuple[float, float, float]

    @classmethod
    def for_spacing(
        cls,
        spacing: Sequence[float],
        shape: Sequence[int],
        target: Sequence[float] = TARGET_SPACING_MM,
    ) -> AnalysisGrid:
        """Grid for an input of ``shape`` and ``spacing`` (z, y, x) reduced towards ``target`` mm."""
        factors = tuple(max(1, int(round(t / s))) if s <= t / 1.5 else 1 for s, t in zip(spacing, target, strict=True))
        return cls(factors, tuple(int(n) for n in shape), tuple(float(s) for s in spacing))  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the working grid (ceil division, the last block may be partial)."""
        return tuple(-(-n // f) for n, f in zip(self.input_shape, self.factors, strict=True))  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) of the working grid in mm."""
        return tuple(s * f for s, f in zip(self.input_spacing, self.factors, strict=True))  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        """Volume of one working voxel in mL."""
        return float(np.prod(self.spacing)) / 1000.0

    def downsample(self, array: np.ndarray) -> np.ndarray:
        """Block mean (float32) of ``array``; partial edge blocks are padded with their edge values."""
        if self.factors == (1, 1, 1):
            return np.asarray(array, dtype=np.float32)
        pad = [(0, s * f - n) for s, f, n in zip(self.shape, self.factors, self.input_shape, strict=True)]
        a = np.pad(array, pad, mode="edge") if any(p[1] for p in pad) else np.asarray(array)
        (sz, sy, sx), (fz, fy, fx) = self.shape, self.factors
        # one axis at a time, the slice axis first (contiguous, shrinks the data most); integers sum exactly
        acc = np.int32 if a.dtype.kind in "iub" and a.dtype.itemsize <= 2 else np.float32
        out = a.reshape(sz, fz, -1).sum(axis=1, dtype=acc) if fz > 1 else a.reshape(sz, -1).astype(acc)
        out = out.reshape(sz, sy, fy, -1).sum(axis=2, dtype=acc) if fy > 1 else out.reshape(sz, sy, -1)
        out = out.reshape(sz, sy, sx, fx).sum(axis=3, dtype=acc) if fx > 1 else out.reshape(sz, sy, sx)
        return (out / np.float32(fz * fy * fx)).astype(np.float32, copy=False)

    def upsample(self, array: np.ndarray) -> np.ndarray:
        """Nearest-neighbour copy of a working-grid array back onto the input grid.

        Rows are repeated along x once on the small grid, then copied as whole rows (contiguous, fast).
        """
        if self.factors == (1, 1, 1):
            return np.asarray(array)
        nz, ny, nx = self.input_shape
        return self.upsample_box(array, (slice(0, nz), slice(0, ny), slice(0, nx)))

    def upsample_box(self, array: np.ndarray, box: Sequence[slice]) -> np.ndarray:
        """Input-grid copy of ``array`` (working grid) for the input-grid box ``box`` only (3 slices, step 1).

        Example:
            >>> import numpy as np
            >>> g = AnalysisGrid.for_spacing((1.0, 0.625, 0.625), (12, 8, 8))
            >>> a = np.arange(48).reshape(g.shape)
            >>> box = (slice(3, 9), slice(1, 6), slice(2, 7))
            >>> bool((g.upsample_box(a, box) == g.upsample(a)[box]).all())
            True
        """
        lo = [max(0, int(b.start or 0)) for b in box]
        hi = [min(n, int(n if b.stop is None else b.stop)) for b, n in zip(box, self.input_shape, strict=True)]
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            return np.empty([max(0, h - lo_) for lo_, h in zip(lo, hi, strict=True)], dtype=array.dtype)
        (fz, fy, fx), g0 = self.factors, [lo_ // f for lo_, f in zip(lo, self.factors, strict=True)]
        g1 = [(h - 1) // f + 1 for h, f in zip(hi, self.factors, strict=True)]
        part = np.asarray(array)[g0[0] : g1[0], g0[1] : g1[1], g0[2] : g1[2]]
        rows = np.repeat(part, fx, axis=2) if fx > 1 else part
        rows = rows[:, :, lo[2] - g0[2] * fx : hi[2] - g0[2] * fx]
        sz, sy = part.shape[:2]
        out = np.empty((sz * fz, sy * fy, rows.shape[2]), dtype=array.dtype)
        out.reshape(sz, fz, sy, fy, rows.shape[2])[...] = rows[:, None, :, None, :]
        return out[lo[0] - g0[0] * fz : hi[0] - g0[0] * fz, lo[1] - g0[1] * fy : hi[1] - g0[1] * fy]

    def input_counts(self, labels: np.ndarray, n: int) -> np.ndarray:
        """Voxel counts of the labels ``0..n-1`` of ``labels`` (working grid) as :meth:`upsample` would give them.

        Counted on the working grid, each voxel weighted by the size of its (possibly partial) input block.

        Example:
            >>> import numpy as np
            >>> g = AnalysisGrid.for_spacing((1.0, 0.625, 0.625), (11, 7, 8))
            >>> lab = np.arange(g.shape[0] * 16).reshape(g.shape) % 3
            >>> g.input_counts(lab, 3).tolist() == np.bincount(g.upsample(lab).ravel(), minlength=3).tolist()
            True
        """
        w = [
            np.minimum(f, n_in - np.arange(s) * f)
            for s, f, n_in in zip(self.shape, self.factors, self.input_shape, strict=True)
        ]
        wyx = np.multiply.outer(w[1], w[2]).ravel()
        out = np.zeros(n, np.int64)
        for z in range(labels.shape[0]):
            counts = np.bincount(labels[z].ravel(), weights=wyx, minlength=n)[:n]
            out += np.rint(counts).astype(np.int64) * int(w[0][z])
        return out

    def to_input_index(self, index: Sequence[float]) -> tuple[float, float, float]:
        """Continuous input-grid index of the centre of working voxel ``index`` (z, y, x)."""
        return tuple(  # type: ignore[return-value]
            (float(i) + 0.5) * f - 0.5 for i, f in zip(index, self.factors, strict=True)
        )
