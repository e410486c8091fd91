"""Output grid of slice interpolation: which slices to make, where they lie, and input checks.

Convention (exact, no rounding of positions): output slice ``k`` lies at continuous input index
``k / factor`` along array axis 0, ``k = 0 .. floor((n - 1) * factor)``; the first output slice is
the first input slice, nothing is extrapolated past the last one. With an integer factor every input
slice reappears at output index ``i * factor``. ``origin`` and ``direction`` are unchanged, the new
slice spacing is ``spacing_z / factor``, so ``affine`` stays exact.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> v = Volume(np.zeros((3, 4, 4), np.int16), spacing=(5.0, 0.7, 0.7))
    >>> grid = output_grid(v, spacing_z=1.25)
    >>> grid.factor, len(grid.positions), grid.spacing
    (4.0, 9, (1.25, 0.7, 0.7))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ctlens.core.errors import InterpolationError
from ctlens.core.volume import Volume

__all__ = ["OutputGrid", "check_axial", "output_grid", "output_positions"]

MAX_AXIAL_ANGLE_DEG = 45.0
"""The slice normal (array axis 0) may deviate this much from the patient S/I axis (gantry tilt is fine)."""


@dataclass(frozen=True)
class OutputGrid:
    """Where the output slices lie: ``positions`` (continuous input indices), ``factor``, ``spacing`` (z, y, x)."""

    positions: np.ndarray
    factor: float
    spacing: tuple[float, float, float]


def output_positions(n_slices: int, factor: float) -> np.ndarray:
    """Continuous input indices ``k / factor`` of the output slices (see module doc).

    Example:
        >>> output_positions(3, 2).tolist()
        [0.0, 0.5, 1.0, 1.5, 2.0]
    """
    count = int(math.floor((n_slices - 1) * factor + 1e-6)) + 1
    positions = np.arange(count, dtype=np.float64) / factor
    return np.minimum(positions, n_slices - 1)


def check_axial(volume: Volume, name: str = "volume") -> None:
    """Raise :class:`InterpolationError` unless array axis 0 is the slice axis of an axial stack.

    Needed: an orthonormal direction matrix and the slice normal (array axis 0) within 45 degrees of the
    patient's S/I axis (a corrected gantry tilt of 20-30 degrees passes; sagittal/coronal stacks do not).

    Example:
        >>> import numpy as np
        >>> check_axial(Volume(np.zeros((2, 2, 2)), spacing=(3.0, 1.0, 1.0)))
    """
    d = np.asarray(volume.direction, dtype=np.float64)
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-3):
        raise InterpolationError(
            "the grid is oblique/sheared (direction columns are not orthonormal)",
            path=name,
            hint="load DICOM with tilt='correct' or resample to an orthogonal grid first",
        )
    normal = d[:, 0]
    angle = math.degrees(math.acos(min(1.0, abs(float(normal[2])))))
    if angle > MAX_AXIAL_ANGLE_DEG:
        raise InterpolationError(
            f"array axis 0 is not the axial slice axis (its direction is {angle:.0f} degrees from S/I)",
            path=name,
            hint="interpolation runs between axial slices; reorient so array axis 0 runs along S/I "
            "(ctlens.preprocess.display.to_display(volume), exact, no resampling)",
        )


def output_grid(
    volume: Volume, spacing_z: float | None = None, factor: float | None = None, name: str = "volume"
) -> OutputGrid:
    """Check the input and work out the output grid for ``spacing_z`` (mm) or ``factor`` (>= 1).

    Example:
        >>> import numpy as np
        >>> g = output_grid(Volume(np.zeros((4, 2, 2)), spacing=(3.0, 1.0, 1.0)), factor=2.5)
        >>> g.positions.tolist()[:3], g.spacing[0]
        ([0.0, 0.4, 0.8], 1.2)
    """
    check_axial(volume, name)
    n = volume.shape[0]
    if n < 2:
        raise InterpolationError(
            f"only {n} slice: interpolation needs at least two slices", path=name, hint="pass a series, not one image"
        )
    sz = volume.spacing[0]
    if (spacing_z is None) == (factor is None):
        raise InterpolationError(
            "give exactly one of spacing_z (mm) or factor", path=name, hint="e.g. spacing_z=1.0 or factor=4"
        )
    if spacing_z is not None:
        if not spacing_z > 0:
            raise InterpolationError(f"spacing_z must be positive, got {spacing_z}", path=name)
        factor = sz / float(spacing_z)
    assert factor is not None
    if not math.isfinite(factor) or factor < 1 - 1e-9:
        raise InterpolationError(
            f"factor {factor:g} < 1 (input slices every {sz:g} mm): this would remove slices, not add them",
            path=name,
            hint="ask for a spacing at most the input's slice spacing, or use ctlens.preprocess.resample",
        )
    factor = max(float(factor), 1.0)
    return OutputGrid(output_positions(n, factor), factor, (sz / factor, volume.spacing[1], volume.spacing[2]))
