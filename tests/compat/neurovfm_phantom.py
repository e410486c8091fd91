"""Synthetic head CT / MR NIfTI files in any orientation, for the seed 002 (neurovfm) tests that need no shared data.

The phantom is defined in world space (RAS mm, centred on 0): an ellipsoid of brain (40 HU) inside a 4 mm skull
(1000 HU) in air (-1000 HU); a file samples it on a voxel grid whose axes map to world axes in any order and sign.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SEMI_AXES = {"R": 45.0, "A": 55.0, "S": 30.0}
"""Semi-axes (mm) of the skull's outer surface along R/L, A/P and S/I."""
_WORLD = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}
_SIGN = {"R": 1.0, "L": -1.0, "A": 1.0, "P": -1.0, "S": 1.0, "I": -1.0}


def phantom_hu(ras: np.ndarray) -> np.ndarray:
    """HU of the phantom at RAS points ``[..., 3]``."""
    axes = np.array([SEMI_AXES["R"], SEMI_AXES["A"], SEMI_AXES["S"]])
    outer = np.sum((ras / axes) ** 2, axis=-1)
    inner = np.sum((ras / (axes - 4.0)) ** 2, axis=-1)
    return np.where(inner <= 1, 40.0, np.where(outer <= 1, 1000.0, -1000.0))


def write_phantom(
    path: Path, axes: str, shape: tuple[int, int, int], spacing: tuple[float, float, float], mr: bool = False
) -> dict[str, float]:
    """Write the phantom as NIfTI: voxel axis ``i, j, k`` points towards ``axes[0], axes[1], axes[2]`` (e.g. ``"LPS"``).

    The grid is centred on the phantom. Returns the field of view (mm, from the float32 spacing the file holds) along
    ``"RL"``, ``"AP"`` and ``"SI"``.
    MR: intensities 0 (air), 100 (skull), 600 (brain).
    """
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for voxel_axis, (code, n, step) in enumerate(zip(axes, shape, spacing, strict=True)):
        affine[_WORLD[code], voxel_axis] = _SIGN[code] * step
        affine[_WORLD[code], 3] = -_SIGN[code] * step * (n - 1) / 2.0
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    ras = idx @ affine[:3, :3].T + affine[:3, 3]
    hu = phantom_hu(ras)
    if mr:
        data = np.select([hu == 40.0, hu == 1000.0], [600.0, 100.0], 0.0).astype(np.float32)
    else:
        data = hu.astype(np.int16)
    nib.save(nib.Nifti1Image(data, affine), path)
    fov = {}
    for code, n, step in zip(axes, shape, spacing, strict=True):
        # NIfTI stores the spacing as float32: 100 x float32(1.3) is just under 130 mm
        fov["RL" if _WORLD[code] == 0 else "AP" if _WORLD[code] == 1 else "SI"] = n * float(np.float32(step))
    return fov


def grid_size(extent_mm: float, step: float, multiple: int) -> int:
    """Voxels of the model grid along one axis: ``extent / step`` rounded half up, then padded to ``multiple``."""
    n = max(1, int(np.floor(extent_mm / step + 0.5 + 1e-9)))
    return -(-n // multiple) * multiple
