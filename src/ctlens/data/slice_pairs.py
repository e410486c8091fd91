"""``SliceInterpolationDataset``: thick/thin training pairs for the slice-interpolation LDM.

Each item is a random crop of ``depth`` thin slices (``[1, depth, patch, patch]``) from one volume,
the thick slices simulated from it (every ``factor``-th slice, ``simulation="drop"``, or slab averages
with a Gaussian slice profile, ``"slab"``; :mod:`ctlens.data.slice_profiles`) and the conditioning
stack: the thick slices linearly interpolated back onto the thin grid (clamped past the last one).
Values: HU clipped to [-1024, 3071] -> [0, 1] -> ``2x - 1`` in [-1, 1].

Sources are :class:`~ctlens.core.volume.Volume` objects or paths (loaded once with ``ctlens.load``,
DICOM with ``uneven="resample"``). ``axis="auto"`` uses z when the slices are thin enough
(``<= 1.5 x`` in-plane spacing), else the in-plane x axis as the thin axis (for thick-only scans);
the cache of issue B is not used yet. Items are deterministic: item ``i`` depends only on ``seed``
and ``i``, so a resumed training run sees the same batches.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> vol = Volume(np.zeros((20, 40, 40), np.int16), spacing=(1.0, 1.0, 1.0))
    >>> ds = SliceInterpolationDataset([vol], factor=4, depth=8, patch=32, length=3)
    >>> item = ds[0]
    >>> len(ds), tuple(item["thin"].shape), tuple(item["cond"].shape), tuple(item["thick"].shape)
    (3, (1, 8, 32, 32), (1, 8, 32, 32), (1, 2, 32, 32))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ctlens.core.errors import InterpolationError
from ctlens.core.volume import Volume
from ctlens.data.slice_profiles import HU_RANGE, SIMULATIONS, simulate_thick

__all__ = ["HU_RANGE", "SliceInterpolationDataset", "hu_to_model", "model_to_hu", "thin_axis_array"]


def hu_to_model(hu: np.ndarray) -> np.ndarray:
    """HU -> [-1, 1] (clip to [-1024, 3071], to [0, 1], then ``2x - 1``); float32.

    Example:
        >>> hu_to_model(np.array([-1024.0, 3071.0])).tolist()
        [-1.0, 1.0]
    """
    low, high = HU_RANGE
    unit = (np.clip(np.asarray(hu, np.float32), low, high) - low) / (high - low)
    return (unit * 2.0 - 1.0).astype(np.float32)


def model_to_hu(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> HU (inverse of :func:`hu_to_model`, clipped to [-1, 1] first); float32.

    Example:
        >>> model_to_hu(np.array([-1.0, 1.0])).tolist()
        [-1024.0, 3071.0]
    """
    low, high = HU_RANGE
    return ((np.clip(np.asarray(x, np.float32), -1, 1) + 1) / 2 * (high - low) + low).astype(np.float32)


def thin_axis_array(volume: Volume, axis: str = "auto") -> np.ndarray:
    """The volume's array with the thin axis first (``z``, ``y``, ``x`` or ``auto``; see module doc).

    Example:
        >>> thin_axis_array(Volume(np.zeros((3, 4, 5)), spacing=(5.0, 1.0, 1.0))).shape
        (5, 3, 4)
    """
    sz, sy, sx = volume.spacing
    if axis == "auto":
        axis = "z" if sz <= 1.5 * max(sy, sx) else "x"
    order = {"z": (0, 1, 2), "y": (1, 0, 2), "x": (2, 0, 1)}
    if axis not in order:
        raise InterpolationError(f"axis must be auto, z, y or x, got {axis!r}")
    return np.transpose(np.asarray(volume.array), order[axis])


class SliceInterpolationDataset(Dataset):
    """Random thin crops with their simulated thick slices (see module doc); ``length`` items."""

    def __init__(
        self,
        sources: Sequence[Volume | str | os.PathLike[str]],
        *,
        factor: int = 4,
        depth: int = 16,
        patch: int = 64,
        simulation: str = "slab",
        axis: str = "auto",
        length: int = 1000,
        seed: int = 0,
    ) -> None:
        if simulation not in SIMULATIONS:
            raise InterpolationError(f"simulation must be one of {SIMULATIONS}, got {simulation!r}")
        if depth % factor:
            raise InterpolationError(f"depth {depth} must be a multiple of factor {factor}")
        if not sources:
            raise InterpolationError("no training volumes given", hint="list volumes or paths under data.paths")
        self.sources = list(sources)
        self.factor, self.depth, self.patch = int(factor), int(depth), int(patch)
        self.simulation, self.axis, self.length, self.seed = simulation, axis, int(length), int(seed)
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def array(self, index: int) -> np.ndarray:
        """Thin-axis-first array of source ``index`` (loaded once)."""
        if index not in self._arrays:
            source = self.sources[index]
            if not isinstance(source, Volume):
                from ctlens.io import load
                from ctlens.io.loader import file_kind

                options: dict[str, Any] = {"uneven": "resample"} if file_kind(source) == "dicom" else {}
                source = load(Path(source), **options)
            array = thin_axis_array(source, self.axis)
            if array.shape[0] < self.depth:
                raise InterpolationError(
                    f"only {array.shape[0]} thin slices, fewer than depth={self.depth}", path=str(self.sources[index])
                )
            self._arrays[index] = array
        return self._arrays[index]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(i)])
        array = self.array(int(rng.integers(len(self.sources))))
        n, h, w = array.shape
        z0 = int(rng.integers(n - self.depth + 1))
        ph, pw = min(self.patch, h), min(self.patch, w)
        y0 = int(rng.integers(h - ph + 1))
        x0 = int(rng.integers(w - pw + 1))
        thin = np.asarray(array[z0 : z0 + self.depth, y0 : y0 + ph, x0 : x0 + pw], np.float32)
        if (ph, pw) != (self.patch, self.patch):  # pad small images with air
            padded = np.full((self.depth, self.patch, self.patch), HU_RANGE[0], np.float32)
            padded[:, :ph, :pw] = thin
            thin = padded
        thick = simulate_thick(thin, self.factor, self.simulation)
        positions = np.minimum(np.arange(self.depth) / self.factor, thick.shape[0] - 1)
        low = np.floor(positions).astype(int)
        high = np.minimum(low + 1, thick.shape[0] - 1)
        t = (positions - low)[:, None, None].astype(np.float32)
        cond = (1 - t) * thick[low] + t * thick[high]
        return {
            "thin": torch.from_numpy(hu_to_model(thin)[None]),
            "cond": torch.from_numpy(hu_to_model(cond)[None]),
            "thick": torch.from_numpy(hu_to_model(thick)[None]),
        }
