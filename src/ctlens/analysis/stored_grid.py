"""Findings moved from the display grid they are made on to the stored grid of the volume they came from.

:func:`~ctlens.analysis.analyze.analyze` works on ``to_display(volume)`` (anterior at the top, patient left on
image right, slices from inferior to superior; :mod:`ctlens.preprocess.display`), so its heatmap, masks, boxes
and voxel indices are on that grid. Whatever must line up with the *stored* pixels, such as DICOM SEG frames and a
Secondary Capture of the source instances, goes through :func:`findings_on_stored_grid` first. For a volume
already in display order (every axial head-first-supine DICOM series) nothing changes.

Arrays and voxel indices map exactly (transposes and flips). Per-slice boxes map exactly when the slice axis
is the same in both orders; when it is not (a coronal or sagittal acquisition), each stored slice the
candidate crosses gets the candidate's whole in-plane extent.

Example:
    >>> import numpy as np
    >>> from ctlens.analysis.findings import Candidate, Findings
    >>> from ctlens.core.volume import Volume
    >>> from ctlens.preprocess.display import to_display
    >>> from ctlens.preprocess.orientation import reorient
    >>> prone = reorient(Volume(np.zeros((4, 6, 8), np.int16)), "RAS")   # rows and columns flipped
    >>> box = Candidate(bbox=(1, 0, 0, 2, 1, 2), centre_voxel=(1.5, 0.5, 1.0), slice_boxes={1: (0, 0, 1, 2)})
    >>> stored = findings_on_stored_grid(Findings(candidates=[box]), prone).candidates[0]
    >>> stored.bbox, stored.centre_voxel, stored.slice_boxes
    ((1, 4, 5, 2, 5, 7), (1.5, 4.5, 6.0), {1: (4, 5, 5, 7)})
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ctlens.analysis.findings import Candidate, Findings
from ctlens.core.volume import Volume
from ctlens.preprocess.display import display_array, is_display, stored_array, stored_index

__all__ = ["findings_on_stored_grid"]


def findings_on_stored_grid(findings: Findings, volume: Volume) -> Findings:
    """``findings`` (made on ``to_display(volume)``) with arrays, boxes and indices on ``volume``'s own grid."""
    if is_display(volume):
        return findings
    display_shape = tuple(display_array(volume).shape)

    def move(array: np.ndarray | None) -> np.ndarray | None:
        if array is None or tuple(np.shape(array)[:3]) != display_shape:
            return array
        return np.ascontiguousarray(stored_array(volume, np.asarray(array)))

    return dataclasses.replace(
        findings,
        heatmap=move(findings.heatmap),
        roi_mask=move(findings.roi_mask),
        lung_labels=move(findings.lung_labels),
        candidates=[_candidate_on_stored_grid(c, volume) for c in findings.candidates],
        input_shape=tuple(volume.shape) if findings.input_shape else findings.input_shape,
    )


def _slice_axis_kept(volume: Volume) -> bool:
    """True when display slice ``k`` is a stored slice (the slice axis is not permuted)."""
    before = stored_index(volume, (0.0, 0.0, 0.0))
    after = stored_index(volume, (1.0, 0.0, 0.0))
    return before[1:] == after[1:]


def _box(points: list[tuple[float, float, float]]) -> tuple[list[int], list[int]]:
    coords = np.array(points)
    return [int(round(v)) for v in coords.min(axis=0)], [int(round(v)) for v in coords.max(axis=0)]


def _candidate_on_stored_grid(candidate: Candidate, volume: Volume) -> Candidate:
    z0, y0, x0, z1, y1, x1 = candidate.bbox
    corners = [stored_index(volume, c) for c in itertools.product((z0, z1), (y0, y1), (x0, x1))]
    lo, hi = _box(corners)
    if _slice_axis_kept(volume):
        slice_boxes = {}
        for z, (by0, bx0, by1, bx1) in candidate.slice_boxes.items():
            ends = [stored_index(volume, (z, by0, bx0)), stored_index(volume, (z, by1, bx1))]
            (sz, sy0, sx0), (_, sy1, sx1) = _box(ends)
            slice_boxes[sz] = (sy0, sx0, sy1, sx1)
    else:
        slice_boxes = {z: (lo[1], lo[2], hi[1], hi[2]) for z in range(lo[0], hi[0] + 1)}
    return dataclasses.replace(
        candidate,
        bbox=(*lo, *hi),
        centre_voxel=tuple(round(v, 2) for v in stored_index(volume, candidate.centre_voxel)),
        slice_range=(lo[0], hi[0]),
        slice_boxes=dict(sorted(slice_boxes.items())),
    )
