"""Seed 000's data shapes: a :class:`~ctlens.core.volume.Volume` as ``(slices, metadata)`` and back.

The earlier library handed out a list of 2-D slices plus one metadata dict per slice, sorted by position. Here a
volume read by :func:`ctlens.io.load` becomes that pair (HU slices, not windowed: windowing is a display step), and
the pair becomes a volume again with the geometry the dicts carry (position, orientation, pixel spacing), so a
user's own lists (slices cut, reordered or built by hand) round-trip too.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> v = Volume(np.arange(24, dtype=np.int16).reshape(2, 3, 4), spacing=(2.5, 0.7, 0.7), origin=(1, 2, 3))
    >>> slices, meta = volume_to_slices(v)
    >>> meta[1]["image_position_patient"], meta[1]["slice_location"]
    ([1.0, 2.0, 5.5], 5.5)
    >>> back = slices_to_volume(slices, meta)
    >>> back.spacing, np.array_equal(back.array, v.array)
    ((2.5, 0.7, 0.7), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ctlens.core.volume import Volume

__all__ = ["slices_to_volume", "volume_to_slices"]

_SERIES_KEYS = ("manufacturer", "model", "kernel", "body_part", "slice_thickness", "kvp", "patient_position")


def volume_to_slices(volume: Volume) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """``(slices, metadata)``: the volume's 2-D ``[y, x]`` slices and one JSON-ready dict per slice, in z order.

    Each dict: ``index``, ``image_position_patient`` (LPS mm), ``image_orientation_patient`` (row then column
    direction cosines, as DICOM), ``pixel_spacing`` ``[row, column]`` mm, ``slice_spacing`` mm, ``slice_location``
    (position along the stacking axis, mm), ``slice_direction`` (that axis, LPS; it differs from the plane normal
    under gantry tilt), ``shape``, ``modality``, ``sop_instance_uid`` when known (de-identified
    as the reader left it) and the series facts the reader kept (manufacturer, kernel, ...).

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> s, m = volume_to_slices(Volume(np.zeros((3, 2, 2), np.int16)))
        >>> len(s), [d["index"] for d in m], m[2]["image_orientation_patient"]
        (3, [0, 1, 2], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    """
    d = np.asarray(volume.direction, float)
    normal = d[:, 0]
    orientation = [*d[:, 2].tolist(), *d[:, 1].tolist()]  # DICOM: row direction (along x) then column (along y)
    sop = volume.meta.get("sop_uids") or []
    series = {k: volume.meta[k] for k in _SERIES_KEYS if k in volume.meta}
    slices, metadata = [], []
    for k in range(volume.shape[0]):
        pos = volume.world((k, 0, 0))
        entry: dict[str, Any] = {
            "index": k,
            "image_position_patient": [float(x) for x in pos],
            "image_orientation_patient": [float(x) for x in orientation],
            "pixel_spacing": [float(volume.spacing[1]), float(volume.spacing[2])],
            "slice_spacing": float(volume.spacing[0]),
            "slice_direction": [float(x) for x in normal],
            "slice_location": float(np.dot(pos, normal)),
            "shape": [int(volume.shape[1]), int(volume.shape[2])],
            "modality": volume.modality,
            **series,
        }
        if k < len(sop):
            entry["sop_instance_uid"] = sop[k]
        slices.append(volume.array[k])
        metadata.append(entry)
    return slices, metadata


def _vector(meta: dict[str, Any], key: str, size: int) -> np.ndarray | None:
    value = meta.get(key)
    if value is None:
        return None
    arr = np.asarray(value, dtype=float).reshape(-1)
    return arr if arr.size == size and np.isfinite(arr).all() else None


def slices_to_volume(slices: Sequence[np.ndarray], metadata: Sequence[dict[str, Any]] | None = None) -> Volume:
    """Stack 2-D slices into a :class:`Volume`; geometry comes from the per-slice dicts when they carry it.

    Slices are sorted by their position along the slice normal when every dict has a position; the slice step is
    the median step between positions (else ``slice_spacing``, else 1 mm). Missing metadata gives 1 mm axial
    defaults. Raises ``ValueError`` for no slices, slices of different shapes or non-integer samples.

    Example:
        >>> import numpy as np
        >>> m = [{"image_position_patient": [0, 0, z], "pixel_spacing": [0.5, 0.5]} for z in (6.0, 0.0, 3.0)]
        >>> v = slices_to_volume([np.full((2, 2), z, np.int16) for z in (6, 0, 3)], m)
        >>> v.array[:, 0, 0].tolist(), v.spacing, v.origin
        ([0, 3, 6], (3.0, 0.5, 0.5), (0.0, 0.0, 0.0))
    """
    arrays = [np.asarray(s) for s in slices]
    if not arrays:
        raise ValueError("no slices to encode")
    if any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"slices must be 2-D and of one shape, got {sorted({a.shape for a in arrays})}")
    metas = list(metadata or [{} for _ in arrays])
    if len(metas) != len(arrays):
        raise ValueError(f"{len(arrays)} slices but {len(metas)} metadata entries")
    stack = np.stack(arrays)
    if stack.dtype.kind == "f":
        if not np.all(np.isfinite(stack)) or not np.array_equal(stack, np.round(stack)):
            raise ValueError("slices hold non-integer values; pass HU (or stored) integers, not windowed images")
        stack = stack.astype(np.int32 if np.abs(stack).max() > 32767 else np.int16)
    elif stack.dtype.kind not in "iub":
        raise ValueError(f"slices have dtype {stack.dtype}; integer HU samples are needed")
    first = metas[0]
    iop = _vector(first, "image_orientation_patient", 6)
    row, col = (iop[:3], iop[3:]) if iop is not None else (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    given = _vector(first, "slice_direction", 3)  # the stacking axis; not the plane normal under gantry tilt
    normal = given if given is not None else np.cross(row, col)
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise ValueError("image_orientation_patient / slice_direction give no slice axis (degenerate vectors)")
    normal = normal / norm
    positions = [_vector(m, "image_position_patient", 3) for m in metas]
    origin = np.zeros(3)
    z_step = float(first.get("slice_spacing") or 1.0)
    if all(p is not None for p in positions):
        along = np.array([float(np.dot(p, normal)) for p in positions])  # type: ignore[arg-type]
        order = np.argsort(along, kind="stable")
        stack, along = stack[order], along[order]
        origin = np.asarray(positions[int(order[0])], float)
        steps = np.diff(along)
        if steps.size and float(np.median(steps)) > 0:
            z_step = float(np.median(steps))
    ps = _vector(first, "pixel_spacing", 2)
    sy, sx = (float(ps[0]), float(ps[1])) if ps is not None and (ps > 0).all() else (1.0, 1.0)
    direction = np.column_stack([normal, col, row])
    meta = {k: first[k] for k in _SERIES_KEYS if k in first}
    modality = str(first.get("modality") or "CT")
    return Volume(stack, (z_step, sy, sx), tuple(origin), direction, modality=modality, meta=meta)
