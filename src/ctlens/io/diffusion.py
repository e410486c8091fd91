"""Diffusion b-values and gradient directions of one DICOM image plane, from whichever header holds them.

Read in this order, the first present wins:

1. the standard attributes ``DiffusionBValue`` (0018,9087) and ``DiffusionGradientOrientation`` (0018,9089),
   directly in the data set (classic files) or in the frame's ``MRDiffusionSequence`` (enhanced files);
2. Siemens: the CSA image header's ``B_value`` and ``DiffusionGradientDirection``, else the private
   ``SIEMENS MR HEADER`` elements (0019,xx0C) b-value and (0019,xx0E) direction;
3. GE: the first value of (0043,xx39) (``GEMS_PARM_01``), the b-value, less 10^9 when GE adds it;
4. Philips: (2001,xx03) b-value (``Philips Imaging DD 001``) and (2005,xxB0..B2) direction.

Directions are in the patient frame (LPS) as the scanners write them; a volume without direction (b = 0 or a
trace image) has none. dcm2niix reads the same sources (its notes on each vendor's diffusion tags).

Example:
    >>> ds = Dataset(); ds.DiffusionBValue = 1000.0; ds.DiffusionGradientOrientation = [0.0, 0.6, 0.8]
    >>> diffusion_facts(ds)
    {'DiffusionBValue': 1000.0, 'DiffusionGradientOrientation': (0.0, 0.6, 0.8)}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ctlens.io.mosaic import csa_value, csa_vector

__all__ = ["diffusion_facts", "diffusion_key"]


def _float(value: Any) -> float | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").strip("\0 ")
    if isinstance(value, str) and "\\" in value:
        value = value.split("\\")[0]
    elif not isinstance(value, str) and hasattr(value, "__iter__"):
        values = list(value)
        value = values[0] if values else None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _vector(value: Any) -> tuple[float, float, float] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(out) != 3 or not all(np.isfinite(out)):
        return None
    return out  # type: ignore[return-value]


def _private(ds: Dataset, group: int, creator: str, offset: int) -> Any:
    try:
        return ds.private_block(group, creator)[offset].value
    except (KeyError, ValueError):
        return None


def _standard(item: Dataset | None) -> tuple[float | None, tuple[float, float, float] | None]:
    if item is None:
        return None, None
    b = _float(item.get("DiffusionBValue"))
    direction = _vector(item.get("DiffusionGradientOrientation") or [])
    sequence = item.get("DiffusionGradientDirectionSequence")
    if direction is None and sequence:
        direction = _vector(sequence[0].get("DiffusionGradientOrientation") or [])
    return b, direction


def diffusion_facts(
    ds: Dataset, frame_item: Dataset | None = None, csa: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{"DiffusionBValue": b, "DiffusionGradientOrientation": (x, y, z)}`` (what is known) for one plane.

    ``frame_item``: the frame's ``MRDiffusionSequence`` item of an enhanced file; ``csa``: the parsed Siemens CSA
    image header (:func:`ctlens.io.mosaic.csa_image_header`).

    Example:
        >>> diffusion_facts(Dataset())
        {}
    """
    b, direction = _standard(frame_item)
    if b is None:
        b, direction = _standard(ds)
    if b is None and csa is not None:
        b = _float(csa_value(csa, "B_value"))
        vector = csa_vector(csa, "DiffusionGradientDirection")
        direction = None if vector is None else tuple(float(v) for v in vector)  # type: ignore[assignment]
    if b is None:
        b = _float(_private(ds, 0x0019, "SIEMENS MR HEADER", 0x0C))
        if b is not None:
            direction = _vector(_private(ds, 0x0019, "SIEMENS MR HEADER", 0x0E) or [])
    if b is None:
        b = _float(_private(ds, 0x0043, "GEMS_PARM_01", 0x39))
        if b is not None and b >= 1e9:
            b -= 1e9
    if b is None:
        b = _float(_private(ds, 0x2001, "Philips Imaging DD 001", 0x03))
        if b is not None:
            parts = [_float(_private(ds, 0x2005, "Philips MR Imaging DD 001", k)) for k in (0xB0, 0xB1, 0xB2)]
            direction = None if any(p is None for p in parts) else tuple(parts)  # type: ignore[assignment]
    facts: dict[str, Any] = {}
    if b is not None:
        facts["DiffusionBValue"] = b
        if direction is not None and b > 0:
            facts["DiffusionGradientOrientation"] = direction
    return facts


def diffusion_key(facts: dict[str, Any]) -> str:
    """The text that tells diffusion volumes apart: b-value and direction (rounded), "" without a b-value.

    Example:
        >>> diffusion_key({"DiffusionBValue": 1000.0, "DiffusionGradientOrientation": (0.0, 0.6, 0.8)})
        'b1000 0,0.6,0.8'
    """
    b = facts.get("DiffusionBValue")
    if b is None:
        return ""
    direction = facts.get("DiffusionGradientOrientation")
    text = f"b{b:g}"
    if direction is not None:
        text += " " + ",".join(f"{round(v, 4):g}" for v in direction)
    return text
