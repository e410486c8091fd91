"""Slice-stack geometry from DICOM positions: order, spacing, gaps and gantry tilt.

Slices are ordered by ImagePositionPatient projected on the slice normal
(never by InstanceNumber). Spacing comes from those positions (never from
SliceThickness). A stack whose slice origins drift within the slice plane as
they advance (gantry tilt: the origins follow the table, the planes are tilted)
is reported as a shear with its angle.

Example:
    >>> import numpy as np
    >>> iop = np.array([1, 0, 0, 0, 1, 0.0])
    >>> g = stack_geometry([np.array([0, 0, z]) for z in (0.0, 2.5, 5.0)], iop)
    >>> g.step, g.uneven, g.tilt_deg
    (2.5, False, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctlens.core.errors import GeometryError
from ctlens.core.volume import position_in_range, spacing_in_range

POSITION_TOLERANCE_MM = 0.01
"""Slice positions closer than this are the same position; in-plane drift below it is not tilt."""
UNEVEN_RELATIVE_TOLERANCE = 0.01
"""A step differing from the usual one by more than this fraction (and the absolute tolerance) is uneven..."""
JITTER_RELATIVE_TOLERANCE = 0.02
"""... unless every slice lies within this fraction of a step of an even grid (jitter, as real scanners write it):
then the stack is even, its step the first-to-last distance over the number of steps."""


def _shown(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in np.asarray(values, dtype=np.float64).ravel()[:6]) + ")"


def usable_spacing(value: float) -> bool:
    """Whether ``value`` (mm) is a pixel or slice spacing: finite, in ``MIN_SPACING_MM < value <= MAX_SPACING_MM``.

    Example:
        >>> usable_spacing(0.7), usable_spacing(0.0), usable_spacing(float("nan")), usable_spacing(1e-320)
        (True, False, False, False)
    """
    return spacing_in_range([value])  # one rule for every reader (ctlens.core.volume)


def single_slice_step(thickness: object) -> tuple[float, str | None]:
    """The step of a one-slice volume from its SliceThickness: ``(step, None)``, or ``(1.0, warning)`` when the
    value is no size (non-finite, not above ``MIN_SPACING_MM``, over ``MAX_SPACING_MM``); absent: ``(1.0, None)``.

    Example:
        >>> single_slice_step("2.5"), single_slice_step(None)
        ((2.5, None), (1.0, None))
        >>> single_slice_step("-3")
        (1.0, "SliceThickness '-3' is no slice size: 1 mm used for the single slice")
    """
    if thickness is None or thickness == "":
        return 1.0, None
    try:
        value = float(thickness)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        value = float("nan")
    if usable_spacing(value):
        return value, None
    return 1.0, f"SliceThickness {str(thickness)[:30]!r} is no slice size: 1 mm used for the single slice"


def plane_problem(position: np.ndarray, orientation: np.ndarray, spacing: np.ndarray | None) -> str | None:
    """Why a plane's ImagePositionPatient, ImageOrientationPatient or PixelSpacing cannot place it, or None.

    Refused: non-finite or far-off positions, direction cosines that are not finite, of zero (or absurd) length,
    or parallel, and pixel spacings that :func:`usable_spacing` refuses (``spacing`` None: absent, 1 mm is used).

    Example:
        >>> iop = np.array([1, 0, 0, 0, 1, 0.0])
        >>> plane_problem(np.zeros(3), iop, np.array([0.5, 0.5])) is None
        True
        >>> plane_problem(np.zeros(3), np.zeros(6), None)
        'ImageOrientationPatient (0, 0, 0, 0, 0, 0) is not two directions'
        >>> plane_problem(np.zeros(3), iop, np.array([0.5, float("nan")]))
        'PixelSpacing (0.5, nan) is not two positive sizes'
    """
    pos = np.asarray(position, dtype=np.float64)
    if not position_in_range(pos.ravel()):
        return f"ImagePositionPatient {_shown(pos)} is not a position"
    iop = np.asarray(orientation, dtype=np.float64)
    norms = np.linalg.norm(iop.reshape(2, 3), axis=1) if np.all(np.isfinite(iop)) and iop.size == 6 else None
    if norms is None or not np.all((norms > 1e-3) & (norms < 1e3)):
        return f"ImageOrientationPatient {_shown(iop)} is not two directions"
    row, col = iop[:3] / norms[0], iop[3:] / norms[1]
    if np.linalg.norm(np.cross(row, col)) < 1e-3:
        return f"ImageOrientationPatient {_shown(iop)} has parallel row and column directions"
    if spacing is not None and not all(usable_spacing(float(s)) for s in np.asarray(spacing).ravel()):
        return f"PixelSpacing {_shown(spacing)} is not two positive sizes"
    return None


@dataclass
class StackGeometry:
    """Where each slice (in ascending order along the normal) lies relative to the first."""

    order: np.ndarray
    """Indices that sort the input slices ascending along the normal."""
    row_cosine: np.ndarray
    column_cosine: np.ndarray
    normal: np.ndarray
    origin: np.ndarray
    """ImagePositionPatient of the first slice (after sorting)."""
    offsets: np.ndarray
    """Distance of each sorted slice from the first along the normal, mm."""
    shift_column: np.ndarray
    """In-plane drift of each sorted slice's origin along the column cosine (rows direction), mm."""
    shift_row: np.ndarray
    """In-plane drift along the row cosine, mm."""
    step: float
    """The usual distance between neighbouring slices (median step), mm."""
    uneven: bool
    missing_slices: int
    tilt_deg: float
    warnings: list[str] = field(default_factory=list)

    @property
    def tilted(self) -> bool:
        return bool(np.abs(self.shift_column).max(initial=0) > POSITION_TOLERANCE_MM) or bool(
            np.abs(self.shift_row).max(initial=0) > POSITION_TOLERANCE_MM
        )

    @property
    def steps(self) -> np.ndarray:
        return np.diff(self.offsets)


def _jitter_only(offsets: np.ndarray) -> bool:
    """Whether every offset lies within :data:`JITTER_RELATIVE_TOLERANCE` of a step of the least-squares even grid."""
    k = np.arange(len(offsets), dtype=np.float64)
    slope, intercept = np.polyfit(k, offsets, 1)
    residual = np.abs(offsets - (slope * k + intercept)).max()
    return bool(slope > 0 and residual <= max(POSITION_TOLERANCE_MM, JITTER_RELATIVE_TOLERANCE * slope))


def even_grid_step(offsets: np.ndarray, step: float) -> float:
    """The step of the equidistant grid from the first to the last slice closest to ``step`` (the usual step).

    The grid's last point is the last slice, so a resampled volume spans the true first-to-last distance.

    Example:
        >>> round(even_grid_step(np.array([0.0, 4.0, 8.0, 9.0, 16.1]), 4.0), 4)
        4.025
    """
    total = float(offsets[-1]) if len(offsets) else 0.0
    if total <= 0 or step <= 0:
        return step
    return total / max(1, round(total / step))


def stack_geometry(positions: list[np.ndarray], iop: np.ndarray, name: str = "") -> StackGeometry:
    """Order slices and measure spacing, gaps and tilt from positions and orientation."""
    for position in positions:  # the header reader skips such planes; a caller's own values are checked here too
        problem = plane_problem(position, iop, None)
        if problem is not None:
            raise GeometryError(problem, path=name or None)
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    along = pos @ normal
    order = np.argsort(along, kind="stable")
    pos, along = pos[order], along[order]
    offsets = along - along[0]
    steps = np.diff(offsets)
    if len(steps) and steps.min() < POSITION_TOLERANCE_MM:
        dup = int(np.sum(steps < POSITION_TOLERANCE_MM))
        raise GeometryError(
            f"{dup} slice(s) share a position with another slice, and no header field (AcquisitionNumber, echo, "
            "image type, temporal position, acquisition or content time) tells their stacks apart",
            path=name or None,
            hint="remove the repeated slices, or put each stack in its own series",
        )
    drift = pos - pos[0] - offsets[:, None] * normal[None, :]
    shift_col, shift_row = drift @ col, drift @ row
    step = float(np.median(steps)) if len(steps) else 1.0
    warnings: list[str] = []
    uneven = False
    missing = 0
    if len(steps):
        tol = max(POSITION_TOLERANCE_MM, UNEVEN_RELATIVE_TOLERANCE * step)
        odd = np.abs(steps - step) > tol
        uneven = bool(odd.any()) and not _jitter_only(offsets)
        if not uneven and offsets[-1] > 0:
            step = float(offsets[-1]) / len(steps)  # the volume spans the first to the last slice
        if uneven:
            ratios = steps[odd] / step
            gaps = np.round(ratios)
            is_gap = (gaps >= 2) & (np.abs(ratios - gaps) < 0.1)
            missing = int((gaps[is_gap] - 1).sum())
            desc = ", ".join(f"{s:.3g}" for s in np.unique(np.round(steps, 3)))
            msg = f"uneven slice spacing: steps of {desc} mm (usual {step:.4g} mm)"
            if missing:
                msg += f"; about {missing} slice(s) appear to be missing"
            warnings.append(msg)
    tilt = 0.0
    if len(steps) and offsets[-1] > 0:
        slope = np.hypot(shift_col[-1], shift_row[-1]) / offsets[-1]
        tilt = float(np.degrees(np.arctan(slope)))
        if tilt > 0:
            predicted = np.outer(offsets / offsets[-1], [shift_col[-1], shift_row[-1]])
            if np.abs(predicted - np.c_[shift_col, shift_row]).max() > max(0.1, 0.01 * step):
                raise GeometryError(
                    "slice origins drift irregularly within the slice plane (not a constant gantry tilt)",
                    path=name or None,
                    hint="the series may mix several stacks; check it with `ctlens info`",
                )
        if np.hypot(shift_col[-1], shift_row[-1]) <= POSITION_TOLERANCE_MM:
            tilt = 0.0
    return StackGeometry(
        order=order,
        row_cosine=row,
        column_cosine=col,
        normal=normal,
        origin=pos[0],
        offsets=offsets,
        shift_column=shift_col,
        shift_row=shift_row,
        step=step,
        uneven=uneven,
        missing_slices=missing,
        tilt_deg=tilt,
        warnings=warnings,
    )
