"""`Volume`: the one core type of ctlens.

Conventions (see DESIGN.md):

* ``array`` is indexed ``[z, y, x]`` (slice, row, column); HU for CT.
* ``spacing`` is in mm, in array order ``(z, y, x)``.
* ``origin`` is the patient position (LPS, mm, as DICOM) of voxel ``[0, 0, 0]``.
* ``direction`` is a 3x3 matrix whose **columns** are the LPS unit vectors of
  the array axes, in array order: column 0 is the slice (z) axis, column 1
  the row (y) axis, column 2 the column (x) axis.
* ``affine`` (4x4) maps an array index ``(z, y, x, 1)`` to LPS mm:
  ``lps = origin + direction @ diag(spacing) @ index``.

SimpleITK and ITK order the same facts ``(x, y, z)``; use
:meth:`Volume.from_itk_geometry` / :meth:`Volume.itk_geometry` to convert.

Example:
    >>> import numpy as np
    >>> v = Volume(np.zeros((2, 3, 4), np.int16), spacing=(5.0, 0.5, 0.5))
    >>> v.shape, v.world((1, 0, 0)).tolist()
    ((2, 3, 4), [0.0, 0.0, 5.0])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

MIN_SPACING_MM = 1e-6
"""Smallest voxel spacing a reader accepts from a file (a nanometre; below it affines lose their precision)."""
MAX_SPACING_MM = 1e6
"""Largest voxel spacing a reader accepts from a file (a kilometre)."""
MAX_POSITION_MM = 1e9
"""Largest absolute coordinate of a position (origin, slice position) a reader accepts from a file (1000 km; real
ones are within a few metres of the scanner's isocentre)."""


def spacing_in_range(spacing: Any) -> bool:
    """True when every value is a finite spacing in (``MIN_SPACING_MM``, ``MAX_SPACING_MM``] mm.

    Readers check a file's spacings with it before building a :class:`Volume` (tiny values such as 1e-320 make
    singular affines; huge ones overflow them).

    Example:
        >>> spacing_in_range([0.7, 0.7, 2.5]), spacing_in_range([1e-320, 1, 1]), spacing_in_range([float("nan")])
        (True, False, False)
    """
    return all(MIN_SPACING_MM < float(s) <= MAX_SPACING_MM for s in spacing)


def position_in_range(position: Any) -> bool:
    """True when every coordinate is finite and within +-``MAX_POSITION_MM`` mm (one rule for every reader).

    Example:
        >>> position_in_range([-250.0, 180.5, 1e3]), position_in_range([0, 0, 2e9]), position_in_range([float("inf")])
        (True, False, False)
    """
    return all(abs(float(p)) <= MAX_POSITION_MM for p in position)


_IDENTITY_ZYX = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
"""Axial default: array z -> LPS z, array y -> LPS y, array x -> LPS x."""


@dataclass(eq=False)
class Volume:
    """A 3-D image with its geometry in patient (LPS) space.

    Example:
        >>> import numpy as np
        >>> v = Volume(np.ones((1, 2, 2), np.float32), spacing=(1, 2, 3), modality="MR")
        >>> v.affine[:3, :3].diagonal().tolist()
        [0.0, 2.0, 0.0]
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: _IDENTITY_ZYX.copy())
    modality: str = "CT"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"Volume needs a 3-D array [z, y, x], got shape {self.array.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be three positive numbers (z, y, x), got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix from array index ``(z, y, x, 1)`` to LPS millimetres."""
        out = np.eye(4)
        out[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        out[:3, 3] = self.origin
        return out

    def world(self, index: Any) -> np.ndarray:
        """LPS position (mm) of one array index ``(z, y, x)`` or of ``N x 3`` indices."""
        idx = np.asarray(index, dtype=np.float64)
        pts = idx.reshape(-1, 3) @ self.affine[:3, :3].T + self.affine[:3, 3]
        return pts.reshape(idx.shape)

    def index(self, lps: Any) -> np.ndarray:
        """Continuous array index ``(z, y, x)`` of an LPS position (mm) or ``N x 3`` positions."""
        pts = np.asarray(lps, dtype=np.float64)
        inv = np.linalg.inv(self.affine)
        idx = pts.reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
        return idx.reshape(pts.shape)

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """A new Volume with the same geometry and meta (copied) but another array."""
        return replace(self, array=array, meta=dict(self.meta), **changes)

    @classmethod
    def from_itk_geometry(
        cls,
        array: np.ndarray,
        spacing_xyz: Any,
        origin: Any,
        direction_xyz: Any,
        **kwargs: Any,
    ) -> Volume:
        """Build from ITK-ordered geometry (spacing/direction columns in ``x, y, z`` order)."""
        direction = np.asarray(direction_xyz, dtype=np.float64).reshape(3, 3)[:, ::-1]
        return cls(array, spacing=tuple(spacing_xyz)[::-1], origin=tuple(origin), direction=direction, **kwargs)

    def itk_geometry(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """``(spacing_xyz, origin, direction_xyz_flat)`` as SimpleITK's ``SetSpacing`` etc. expect."""
        return (
            tuple(self.spacing[::-1]),
            tuple(self.origin),
            tuple(self.direction[:, ::-1].reshape(-1).tolist()),
        )

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        return f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing=({sp}) mm, modality={self.modality!r})"
