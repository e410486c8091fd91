"""What the input holds that the series entry read leaves out, said as a warning (never a silently shorter stack).

Two rules, both header-only, run once the entry to read is chosen (:func:`ctlens.io.dicom_reader.plan_entry`):

* :func:`left_out_note`: planes of the same SeriesInstanceUID that another entry holds because their size,
  orientation or pixel spacing differ (a series mixing them is split, as dcm2niix does). One damaged Rows or
  PixelSpacing in the middle of a stack would otherwise give the other slices as an even stack of twice the step.
* :func:`stray_note`: planes of another entry (another SeriesInstanceUID, or a part split off by SeriesNumber or
  acquisition; say a damaged UID) of the same orientation and frame of reference that all lie between the chosen
  stack's slices where it has none, and with them make one even stack: a slice of the stack filed elsewhere. Series
  that repeat the stack's positions (another kernel), reach beyond it or interleave unevenly (another thickness) are
  other series: nothing is said.

Example:
    >>> from ctlens.io.dicom_series import SeriesInfo
    >>> a = SeriesInfo(0, "1.2.3", "s", "Thorax", "CT", "B40f", 3, 8, 8, "axial", 3, "")
    >>> left_out_note([a], a) is None, stray_note([a], a) is None
    (True, True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctlens.io.dicom_headers import SliceRef
from ctlens.io.dicom_series import SeriesInfo, siblings, slice_normal

__all__ = ["left_out_note", "stray_note"]


def _files(refs: list[SliceRef]) -> str:
    names = sorted({Path(r.file.display).name for r in refs})
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def left_out_note(infos: list[SeriesInfo], chosen: SeriesInfo) -> str | None:
    """Say which planes of ``chosen``'s SeriesInstanceUID other entries hold (another size, orientation or spacing).

    Parts at overlapping positions (acquisitions, echoes) have their own note (``dicom_series.split_note``).

    Example:
        >>> a = SeriesInfo(0, "1.2.3", "s", "Thorax", "CT", "B40f", 3, 8, 8, "axial", 3, "")
        >>> b = SeriesInfo(1, "1.2.3", "s", "Thorax", "CT", "B40f", 1, 4, 8, "axial", 1, "", part_key="b2")
        >>> left_out_note([a, b], a)  # doctest: +ELLIPSIS
        "1 plane(s) of the same series are not in this volume (another size, orientation or pixel spacing): #1 ..."
    """
    parts = {id(s) for s in siblings(infos, chosen)}
    others = [s for s in infos if id(s) not in parts and s is not chosen and s.series_uid == chosen.series_uid]
    if not others:
        return None
    shown = "; ".join(
        f"#{s.index} {s.n_slices} {s.orientation} plane(s) {s.rows}x{s.columns} in {_files(s.refs)}"
        + (f" [series={s.series_id!r}]" if s.series_id != chosen.series_id else "")
        for s in others[:3]
    )
    return (
        f"{sum(s.n_slices for s in others)} plane(s) of the same series are not in this volume (another size, "
        f"orientation or pixel spacing): {shown}" + (" ..." if len(others) > 3 else "")
    )


def _frame(ref: SliceRef) -> str:
    return str(ref.optional("FrameOfReferenceUID") or "")


def _same_stack(a: SeriesInfo, b: SeriesInfo) -> bool:
    """Whether ``b``'s planes are made as ``a``'s: matrix, pixel spacing, kernel and slice thickness."""
    first, other = a.refs[0], b.refs[0]
    return (
        (a.rows, a.columns, a.kernel) == (b.rows, b.columns, b.kernel)
        and np.allclose(first.pixel_spacing, other.pixel_spacing)
        and first.optional("SliceThickness") == other.optional("SliceThickness")
    )


def stray_note(infos: list[SeriesInfo], chosen: SeriesInfo) -> str | None:
    """Say which other entries' planes all fall in gaps between ``chosen``'s slices (module docstring).

    The other entry's planes must all lie strictly between the first and last slice along the normal, farther than a
    quarter of the smallest step from every slice, and either together with the slices make one evenly spaced stack
    (a thick-slice series offset from a thin one does not) or be made alike (matrix, pixel spacing, kernel, slice
    thickness: an unevenly spaced series, say one with a gantry tilt, that lost a slice).

    Example:
        >>> stray_note([], SeriesInfo(0, "1.2.3", "s", "Thorax", "CT", "B40f", 3, 8, 8, "axial", 3, ""))
    """
    refs = chosen.refs
    if len(refs) < 2:
        return None
    normal = slice_normal(refs[0].orientation)
    mine = np.unique(np.array([r.position for r in refs], dtype=np.float64) @ normal)
    steps = np.diff(mine)
    if len(mine) < 2 or not np.all(np.isfinite(mine)) or steps.min() <= 0:
        return None
    tolerance, frame = steps.min() / 4, _frame(refs[0])
    parts = {id(s) for s in siblings(infos, chosen)}  # the same UID, not parts: left_out_note's
    found = []
    for other in infos:
        if other is chosen or not other.refs or abs(float(slice_normal(other.refs[0].orientation) @ normal)) < 0.999:
            continue
        if other.series_uid == chosen.series_uid and id(other) not in parts:
            continue
        if _frame(other.refs[0]) != frame:
            continue
        theirs = np.array([r.position for r in other.refs], dtype=np.float64) @ normal
        inside = np.all((theirs > mine[0] + tolerance) & (theirs < mine[-1] - tolerance))
        if not inside or np.min(np.abs(theirs[:, None] - mine[None, :])) <= tolerance:
            continue
        merged = np.diff(np.sort(np.concatenate([mine, theirs])))
        if merged.max() - merged.min() <= 0.01 * np.median(merged) or _same_stack(chosen, other):
            found.append(other)  # together one even stack, or planes made alike: the stack's missing slices
    if not found:
        return None
    shown = "; ".join(f"{s.label()} in {_files(s.refs)}" for s in found[:3])
    return (
        f"{sum(s.n_slices for s in found)} plane(s) of another series lie between this volume's slices where it has "
        f"none (a slice of this series filed under another SeriesInstanceUID or SeriesNumber?): {shown}"
    )
