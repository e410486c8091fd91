"""THE display rule: how every 2-D image shown to a person or an LLM is cut from a :class:`~ctlens.core.volume.Volume`.

Whatever the storage order of the source (DICOM, NIfTI in any axis order, NRRD/MHA), :func:`to_display`
reorients the volume -- exactly, by axis flips and transpositions only -- to the **radiological display
convention**, array axes ``(z, y, x)`` pointing ``('S', 'P', 'L')`` (NIfTI order ``"LPS"``):

* slice index ``z`` grows towards **Superior** (slice 1 of N is the most inferior one);
* image row ``y`` grows towards **Posterior**: row 0, the top of an axial image, is **anterior**;
* image column ``x`` grows towards the patient's **Left**: the patient's left is on the image's **right**.

Coronal and sagittal cuts of a display volume (:func:`cut`) put superior at the top; coronal keeps the
patient's left on the image's right, sagittal has anterior on the image's left. A DICOM axial series stored
the usual way is already in this order and comes back as the same object (no copy).

Oblique direction cosines (e.g. a gantry-tilted head CT) are not resampled: each array axis is shown along its
nearest patient axis, the array and its true geometry are kept (world positions stay exact), and
``meta["display_oblique_deg"]`` plus a warning say how far the drawn planes are from true axial/coronal/sagittal;
:func:`orientation_note` words this for captions.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> from ctlens.preprocess.orientation import axcodes, reorient
    >>> dicom_like = Volume(np.zeros((4, 5, 6), np.int16), spacing=(3.0, 0.7, 0.7))
    >>> to_display(dicom_like) is dicom_like
    True
    >>> ras = reorient(dicom_like, "RAS")            # a NIfTI stored RAS: rows point Anterior
    >>> axcodes(ras), axcodes(to_display(ras))
    (('S', 'A', 'R'), ('S', 'P', 'L'))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctlens.core.volume import Volume
from ctlens.preprocess.orientation import axcodes

__all__ = [
    "DISPLAY_AXCODES",
    "OBLIQUE_TOLERANCE_DEG",
    "PLANES",
    "cut",
    "display_array",
    "display_spacing",
    "is_display",
    "oblique_degrees",
    "oblique_note",
    "orientation_note",
    "pixel_spacing",
    "plane_size",
    "slice_label",
    "stored_array",
    "stored_index",
    "to_display",
]

DISPLAY_AXCODES = ("S", "P", "L")
"""Where the display volume's array axes ``(z, y, x)`` point (array order; NIfTI order ``"LPS"``)."""

OBLIQUE_TOLERANCE_DEG = 0.01
"""Direction cosines closer than this (degrees) to the patient axes count as exact (rounding in headers)."""

PLANES = ("axial", "coronal", "sagittal")
"""Cuts of a display volume: across array axis 0, 1 and 2 respectively."""

_PLANE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
_PATIENT_AXIS = {"L": 0, "R": 0, "P": 1, "A": 1, "S": 2, "I": 2}


def _display_order(volume: Volume) -> tuple[list[int], list[bool]]:
    """For each display axis (S, P, L): the stored array axis it comes from and whether that axis is flipped."""
    current = axcodes(volume)
    order = [
        next(a for a, c in enumerate(current) if _PATIENT_AXIS[c] == _PATIENT_AXIS[code]) for code in DISPLAY_AXCODES
    ]
    return order, [current[a] != code for a, code in zip(order, DISPLAY_AXCODES, strict=True)]


def display_array(volume: Volume, array: np.ndarray | None = None) -> np.ndarray:
    """``array`` (default ``volume.array``; any array on the volume's grid, e.g. a heatmap) in display order, as
    a **view** (transposes and flips only, nothing copied): ``display_array(v)`` equals ``to_display(v).array``.

    For the slice route and other per-slice readers; :func:`to_display` gives a contiguous volume with geometry.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> from ctlens.preprocess.orientation import reorient
        >>> v = reorient(Volume(np.arange(24).reshape(2, 3, 4)), "PIR")
        >>> view = display_array(v)
        >>> bool(np.array_equal(view, to_display(v).array)), np.shares_memory(view, v.array)
        (True, True)
    """
    data = volume.array if array is None else array
    if tuple(np.shape(data)[:3]) != volume.shape:
        raise ValueError(f"array of shape {np.shape(data)} is not on the volume's grid {volume.shape}")
    order, flips = _display_order(volume)
    out = np.transpose(data, order)
    for axis, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis)
    return out


def stored_array(volume: Volume, array: np.ndarray) -> np.ndarray:
    """The inverse of :func:`display_array`: ``array`` on the display grid of ``volume`` back in the volume's own
    storage order (a view: transposes and flips only). For results made on ``to_display(volume)`` (a heatmap, a
    label image) that must line up with the stored volume, e.g. DICOM SEG frames of its source instances.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> from ctlens.preprocess.orientation import reorient
        >>> v = reorient(Volume(np.arange(24).reshape(2, 3, 4)), "PIR")
        >>> bool(np.array_equal(stored_array(v, display_array(v)), v.array))
        True
    """
    order, flips = _display_order(volume)
    expected = tuple(volume.shape[a] for a in order)
    if tuple(np.shape(array)[:3]) != expected:
        raise ValueError(f"array of shape {np.shape(array)} is not on the display grid {expected}")
    out = array
    for axis, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis)
    return np.transpose(out, np.argsort(order))


def stored_index(volume: Volume, index: Sequence[float]) -> tuple[float, float, float]:
    """A ``(z, y, x)`` index of the display grid of ``volume`` as an index of the stored array.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> from ctlens.preprocess.orientation import reorient
        >>> v = reorient(Volume(np.arange(24).reshape(2, 3, 4)), "RAI")   # every axis flipped
        >>> stored_index(v, (0, 0, 0)), float(display_array(v)[0, 0, 0]) == float(v.array[1, 2, 3])
        ((1.0, 2.0, 3.0), True)
    """
    order, flips = _display_order(volume)
    out = [0.0, 0.0, 0.0]
    for axis, (source, flip) in enumerate(zip(order, flips, strict=True)):
        value = float(index[axis])
        out[source] = volume.shape[source] - 1 - value if flip else value
    return out[0], out[1], out[2]


def display_spacing(volume: Volume) -> tuple[float, float, float]:
    """The spacing (mm) of the display volume's axes ``(z, y, x)`` = (S/I, P/A, L/R), without reorienting.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> from ctlens.preprocess.orientation import reorient
        >>> display_spacing(reorient(Volume(np.zeros((2, 2, 2)), spacing=(5.0, 0.8, 0.6)), "SAR"))
        (5.0, 0.8, 0.6)
    """
    order, _ = _display_order(volume)
    return tuple(float(volume.spacing[a]) for a in order)  # type: ignore[return-value]


def oblique_degrees(volume: Volume) -> float:
    """Largest angle (degrees) between an array axis and the patient axis it is displayed along; 0 when aligned.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> t = np.radians(10.0)
        >>> rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
        >>> v = Volume(np.zeros((2, 2, 2)), direction=rot @ np.eye(3)[:, ::-1])
        >>> round(oblique_degrees(v), 6), oblique_degrees(Volume(np.zeros((2, 2, 2))))
        (10.0, 0.0)
    """
    direction = np.asarray(volume.direction, dtype=np.float64)
    norms = np.linalg.norm(direction, axis=0)
    cosines = np.abs(direction).max(axis=0) / np.where(norms > 0, norms, 1.0)
    angle = float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))
    return 0.0 if angle < OBLIQUE_TOLERANCE_DEG else angle


def is_display(volume: Volume) -> bool:
    """True when ``volume``'s axes already point ``('S', 'P', 'L')`` (then :func:`to_display` returns it as is).

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> is_display(Volume(np.zeros((2, 2, 2)))), is_display(Volume(np.zeros((2, 2, 2)), direction=-np.eye(3)))
        (True, False)
    """
    return tuple(axcodes(volume)) == DISPLAY_AXCODES


def _oblique_warning(degrees: float) -> str:
    return (
        f"oblique volume: its axes are up to {degrees:.1f} degrees from the patient axes; images are drawn "
        "along the nearest axes without resampling, so they are not true axial, coronal or sagittal planes"
    )


def to_display(volume: Volume, *, contiguous: bool = True) -> Volume:
    """``volume`` reoriented to the display convention: array axes ``(z, y, x)`` = ``(S, P, L)``, exactly.

    Only flips and transpositions (no interpolation); origin, spacing and direction follow so every voxel keeps
    its patient position (the same result as ``reorient(volume, "LPS")``). A volume already in display order is
    returned as the same object, without copying. ``contiguous=False`` keeps the array a view of the stored one
    (a memory-mapped volume stays on disk). An oblique volume gets ``meta["display_oblique_deg"]`` (largest angle
    to the patient axes) and a warning in ``meta["warnings"]``; the caller's volume is never changed.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> from ctlens.preprocess.orientation import reorient
        >>> v = Volume(np.arange(24, dtype=np.int16).reshape(2, 3, 4), spacing=(3.0, 2.0, 1.0))
        >>> asr = reorient(v, "ASR")                    # stored sagittal-first, odd but legal
        >>> d = to_display(asr)
        >>> bool(np.array_equal(d.array, v.array)), d.spacing, bool(np.allclose(d.affine, v.affine))
        (True, (3.0, 2.0, 1.0), True)
    """
    degrees = oblique_degrees(volume)
    ordered = is_display(volume)
    if ordered and (degrees == 0.0 or "display_oblique_deg" in volume.meta):
        return volume
    order, flips = _display_order(volume)
    array = display_array(volume)
    start = [volume.shape[a] - 1 if flip else 0 for a, flip in zip(order, flips, strict=True)]
    start_index = np.zeros(3)
    start_index[order] = start
    out = volume.with_array(
        np.ascontiguousarray(array) if contiguous else array,
        spacing=display_spacing(volume),
        origin=tuple(volume.world(start_index).tolist()),
        direction=volume.direction[:, order] * np.where(flips, -1.0, 1.0)[None, :],
    )
    if degrees > 0.0 and "display_oblique_deg" not in out.meta:
        out.meta["display_oblique_deg"] = round(degrees, 2)
        out.meta["warnings"] = [*out.meta.get("warnings", []), _oblique_warning(degrees)]
    return out


def _axis(plane: str) -> int:
    if plane not in _PLANE_AXIS:
        raise ValueError(f"unknown plane {plane!r}; use one of {', '.join(PLANES)}")
    return _PLANE_AXIS[plane]


def plane_size(shape: tuple[int, ...], plane: str = "axial") -> tuple[int, tuple[int, int]]:
    """``(number of cuts, (rows, columns))`` of ``plane`` cuts from a display array of ``shape``.

    Example:
        >>> plane_size((10, 20, 30), "coronal")
        (20, (10, 30))
    """
    axis = _axis(plane)
    rest = [n for a, n in enumerate(shape[:3]) if a != axis]
    return int(shape[axis]), (int(rest[0]), int(rest[1]))


def cut(array: np.ndarray, k: int, plane: str = "axial") -> np.ndarray:
    """Slice ``k`` (0-based array index) of a display-ordered ``array`` (``[z, y, x]`` = S, P, L) in ``plane``.

    Axial: anterior at the top, patient left on the right. Coronal: superior at the top, patient left on the
    right. Sagittal: superior at the top, anterior on the left. A view of ``array`` where possible.

    Example:
        >>> import numpy as np
        >>> a = np.arange(24).reshape(2, 3, 4)
        >>> cut(a, 1).shape, cut(a, 0, "coronal").tolist()[0], cut(a, 0, "sagittal").shape
        ((3, 4), [12, 13, 14, 15], (2, 3))
    """
    axis = _axis(plane)
    n = array.shape[axis]
    if not 0 <= k < n:
        raise IndexError(f"{plane} slice {k + 1} does not exist (there are {n}: 1..{n})")
    piece = np.take(array, k, axis=axis) if axis else array[k]
    return piece if axis == 0 else piece[::-1]


def pixel_spacing(volume: Volume, plane: str = "axial") -> tuple[float, float]:
    """``(row, column)`` pixel size in mm of a ``plane`` cut of ``volume`` in display order (for the aspect ratio).

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> pixel_spacing(Volume(np.zeros((2, 2, 2)), spacing=(5.0, 0.8, 0.7)), "coronal")
        (5.0, 0.7)
    """
    axis = _axis(plane)
    rest = [s for a, s in enumerate(display_spacing(volume)) if a != axis]
    return float(rest[0]), float(rest[1])


def slice_label(k: int, n: int) -> str:
    """The one way a person is told which slice: 1-based ``"slice k of N"`` from a 0-based array index ``k``.

    Example:
        >>> slice_label(0, 40)
        'slice 1 of 40'
    """
    return f"slice {int(k) + 1} of {int(n)}"


_NOTES = {
    "axial": "axial slices numbered 1..N from inferior to superior; image top = anterior, image right = patient left",
    "coronal": "coronal slices numbered 1..N from anterior to posterior; image top = superior, "
    "image right = patient left",
    "sagittal": "sagittal slices numbered 1..N from patient right to left; image top = superior, image left = anterior",
}


def orientation_note(volume: Volume | None = None, plane: str = "axial") -> str:
    """One caption sentence saying how a display ``plane`` image is oriented (and whether it is oblique).

    Example:
        >>> orientation_note()
        'axial slices numbered 1..N from inferior to superior; image top = anterior, image right = patient left'
    """
    text = _NOTES[PLANES[_axis(plane)]]
    note = oblique_note(volume) if volume is not None else ""
    return f"{text}; {note}" if note else text


def oblique_note(volume: Volume) -> str:
    """The caption words for an oblique volume (``""`` when its axes lie on the patient axes).

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> t = np.radians(12.0)
        >>> tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]]) @ np.eye(3)[:, ::-1]
        >>> oblique_note(Volume(np.zeros((2, 2, 2)), direction=tilt))
        'OBLIQUE volume (12.0 degrees off the patient axes, drawn along the nearest axes without resampling)'
    """
    degrees = oblique_degrees(volume)
    if degrees == 0.0:
        return ""
    return (
        f"OBLIQUE volume ({degrees:.1f} degrees off the patient axes, drawn along the nearest axes without resampling)"
    )
