"""Decide whether a volume goes down the CT path (HU windows) or the MR path (percentile normalization).

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> ct = np.full((4, 8, 8), -1000, np.int16); ct[1:3, 2:6, 2:6] = 40; ct[2, 3, 3] = 1500
    >>> mr = np.arange(256.0).reshape(4, 8, 8)
    >>> detect_mode(Volume(ct, modality=""))[0], detect_mode(Volume(mr, modality="OT"))[0]
    ('ct', 'mri')
"""

from __future__ import annotations

import logging

import numpy as np

from ctlens.core.volume import Volume

__all__ = ["detect_mode"]

log = logging.getLogger(__name__)

_TAGS = {"CT": "ct", "MR": "mri", "MRI": "mri"}
_AIR_HU = (-1100.0, -900.0)
_MIN_AIR_FRACTION = 0.01
_BONE_HU = 1000.0
_CLEAR_AIR_FRACTION = 0.05
_SAMPLE = 2_000_000


def _from_intensity(arr: np.ndarray) -> tuple[str, str]:
    flat = np.asarray(arr).reshape(-1)
    if flat.size > _SAMPLE:
        flat = flat[:: flat.size // _SAMPLE + 1]
    flat = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if flat.size == 0:
        return "mri", "intensity: no finite voxel; defaulting to the MR path"
    air = float(np.mean((flat >= _AIR_HU[0]) & (flat <= _AIR_HU[1])))
    top = float(np.max(flat))
    facts = f"{air:.1%} of voxels in {_AIR_HU[0]:.0f}..{_AIR_HU[1]:.0f} (air in HU), maximum {top:.0f}"
    if air >= _MIN_AIR_FRACTION and top >= _BONE_HU:
        return "ct", f"intensity: {facts} >= {_BONE_HU:.0f} (bone in HU) -> CT"
    if air >= _CLEAR_AIR_FRACTION:
        return "ct", f"intensity: {facts}; air at -1000 HU is unmistakable -> CT"
    return "mri", f"intensity: {facts}, minimum {float(np.min(flat)):.0f}; not on the HU scale -> MR"


def detect_mode(volume: Volume | np.ndarray) -> tuple[str, str]:
    """``("ct" | "mri", reason)`` for a Volume (or a bare array).

    * ``volume.modality`` ``"CT"`` or ``"MR"`` decides, unless ``volume.meta["modality_source"]`` is
      ``"heuristic"`` (a reader's guess, e.g. a NIfTI file without a modality field);
    * otherwise the intensities decide: CT when at least 1 % of the voxels lie near -1000 HU (air,
      -1100..-900) and the maximum reaches 1000 HU (bone), or when at least 5 % lie near -1000 HU;
      anything else (a non-negative, arbitrary scale) is MR.

    The reason is a short human-readable sentence naming the evidence.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> detect_mode(Volume(np.zeros((2, 2, 2)), modality="MR"))
        ('mri', "modality tag 'MR'")
    """
    if not isinstance(volume, Volume):
        return _from_intensity(volume)
    tag = str(volume.modality or "").strip().upper()
    source = volume.meta.get("modality_source")
    if tag in _TAGS and source != "heuristic":
        return _TAGS[tag], f"modality tag {tag!r}"
    mode, reason = _from_intensity(volume.array)
    if tag in _TAGS and _TAGS[tag] != mode:
        log.warning("modality %r was guessed by the reader, the intensities say %s: %s", tag, mode, reason)
    note = f" (modality tag {tag!r} is only a reader's guess)" if tag and source == "heuristic" else ""
    return mode, reason + note
