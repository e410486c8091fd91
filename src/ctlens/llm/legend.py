"""The text that travels with a payload: de-identified acquisition facts, the display legend, a token bound.

:func:`payload_text` composes the payload's text block: the question, the facts, the legend of the tiles, one
line per image (windows, slices, scale) and the automated findings.

Only an allow-list of acquisition facts is sent (from the reader's de-identified meta): modality,
geometry, scanner make and model, kernel, body part, kVp, tube current, exposure time, slice thickness, tilt.
Free text such as the series description is never sent (it can hold names).

Text tokens are bounded, not estimated: byte-level BPE tokenizers (Claude, GPT) and SentencePiece with byte
fallback (Gemini) emit at least one UTF-8 byte per token, so a text costs at most its UTF-8 byte count; each
content block and message adds framing tokens, bounded here by ``BLOCK_FRAMING`` and ``MESSAGE_FRAMING``.

Example:
    >>> text_token_bound("abc", blocks=1)
    43
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ctlens.core.volume import Volume
from ctlens.llm.labelled_montage import window_label
from ctlens.llm.payload_types import PayloadImage

__all__ = [
    "acquisition_facts",
    "facts_line",
    "image_line",
    "orientation_line",
    "payload_text",
    "plane_name",
    "slice_runs",
    "text_token_bound",
]

BLOCK_FRAMING = 8
"""Upper bound on tokens a provider adds around one content block (type markers, separators)."""
MESSAGE_FRAMING = 32
"""Upper bound on tokens added around the user message (role markers, turn separators)."""

_FACT_KEYS = (
    "manufacturer",
    "model",
    "kernel",
    "body_part",
    "slice_thickness",
    "kvp",
    "tube_current_ma",
    "exposure_time_ms",
    "gantry_tilt_deg",
    "tilt_corrected",
    "patient_position",
    "spacing_uneven",
    "missing_slices",
)


def text_token_bound(text: str, *, blocks: int) -> int:
    """An upper bound on the tokens of ``text`` sent with ``blocks`` content blocks (see the module docstring)."""
    return len(text.encode("utf-8")) + BLOCK_FRAMING * blocks + MESSAGE_FRAMING


def acquisition_facts(volume: Volume) -> dict[str, Any]:
    """Non-identifying acquisition facts of ``volume`` (an allow-list of de-identified meta plus geometry).

    Example:
        >>> import numpy as np
        >>> v = Volume(np.zeros((2, 3, 3), np.int16), spacing=(5, 0.7, 0.7), meta={"PatientName": "Doe^Jane",
        ...            "kernel": "B30f", "series_description": "Jane Doe chest"})
        >>> acquisition_facts(v)
        {'modality': 'CT', 'slices': 2, 'matrix': '3x3', 'spacing_mm': [5.0, 0.7, 0.7], 'kernel': 'B30f'}
    """
    meta = volume.meta
    facts: dict[str, Any] = {
        "modality": str(volume.modality),
        "slices": int(volume.shape[0]),
        "matrix": f"{volume.shape[1]}x{volume.shape[2]}",
        "spacing_mm": [round(float(s), 4) for s in volume.spacing],
    }
    for key in _FACT_KEYS:
        value = meta.get(key)
        if isinstance(value, bool | int | float) and not isinstance(value, np.generic):
            facts[key] = round(value, 4) if isinstance(value, float) else value
        elif isinstance(value, np.generic):
            facts[key] = value.item()
        elif isinstance(value, str) and value.strip():
            facts[key] = value.strip()[:64]
    return facts


def facts_line(facts: dict[str, Any]) -> str:
    """One line of text from :func:`acquisition_facts`."""
    parts = [f"{facts['modality']}, {facts['slices']} slices of {facts['matrix']}"]
    sz, sy, sx = facts["spacing_mm"]
    parts.append(f"voxel {sy:g} x {sx:g} mm, slice step {sz:g} mm")
    names = {
        "manufacturer": "{}",
        "model": "{}",
        "kernel": "kernel {}",
        "body_part": "body part {}",
        "slice_thickness": "thickness {} mm",
        "kvp": "{} kVp",
        "tube_current_ma": "{} mA",
        "exposure_time_ms": "exposure {} ms",
        "gantry_tilt_deg": "gantry tilt {} deg",
        "patient_position": "position {}",
    }
    for key, fmt in names.items():
        if key in facts and not (key == "gantry_tilt_deg" and not facts[key]):
            parts.append(fmt.format(facts[key]))
    return "; ".join(parts)


_AXIS_NAMES = {0: ("right", "left"), 1: ("anterior", "posterior"), 2: ("inferior", "superior")}


def _toward(vector: np.ndarray) -> tuple[str, str]:
    a = int(np.argmax(np.abs(vector)))
    low, high = _AXIS_NAMES[a]
    return (low, high) if vector[a] > 0 else (high, low)


def orientation_line(volume: Volume) -> str:
    """How the displayed rows and columns run in the patient (from the direction cosines, LPS).

    Example:
        >>> import numpy as np
        >>> orientation_line(Volume(np.zeros((1, 2, 2))))
        'top of each tile = anterior, bottom = posterior; left of each tile = right, right = left (patient)'
    """
    top, bottom = _toward(volume.direction[:, 1])
    left, right = _toward(volume.direction[:, 2])
    return f"top of each tile = {top}, bottom = {bottom}; left of each tile = {left}, right = {right} (patient)"


def plane_name(volume: Volume) -> str:
    """Plane of the array's slices (axis 0): ``axial``, ``coronal`` or ``sagittal`` (from the direction cosines).

    Example:
        >>> import numpy as np
        >>> plane_name(Volume(np.zeros((1, 2, 2))))
        'axial'
    """
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(volume.direction[:, 0])))]


def slice_runs(values: Sequence[int]) -> str:
    """Sorted 0-based slice indices as runs of 1-based slice numbers (what people read).

    Example:
        >>> slice_runs([0, 1, 2, 5, 7, 8])
        '#1-#3, #6, #8-#9'
    """
    parts: list[str] = []
    start = prev = None
    for v in values:
        if start is None or prev is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"#{start + 1}" if start == prev else f"#{start + 1}-#{prev + 1}")
            start = prev = v
    if start is not None and prev is not None:
        parts.append(f"#{start + 1}" if start == prev else f"#{start + 1}-#{prev + 1}")
    return ", ".join(parts)


def image_line(n: int, image: PayloadImage) -> str:
    """The legend line of image ``n`` (1-based): a montage's windows, slices and scale, or the crops' regions."""
    tiles = image.tiles
    slices = sorted({t.slice_index for t in tiles})
    scale = min(t.scale for t in tiles)
    windows = sorted({t.window for t in tiles})
    if tiles[0].kind == "crop":
        regions = "; ".join(
            f"#{t.slice_index + 1} rows {t.region[0]}-{t.region[1] - 1} cols {t.region[2]}-{t.region[3] - 1}"
            for t in tiles
            if t.window == tiles[0].window
        )
        return f"Image {n}: crops around candidates ({', '.join(windows)}), {scale:.2f} px/voxel: {regions}."
    return f"Image {n}: {', '.join(windows)} window, {len(slices)} slices ({slice_runs(slices)}), {scale:.2f} px/voxel."


def payload_text(
    question: str,
    facts: dict[str, Any],
    *,
    plane: str,
    orientation: str,
    region: tuple[int, int, int, int],
    windows: Sequence[str],
    images: Sequence[PayloadImage],
    findings: Sequence[str],
) -> str:
    """The payload's text block: question, facts (:func:`facts_line`), legend, image lines, findings lines."""
    lines = [
        f"Question: {question.strip()}",
        f"CT series (de-identified): {facts_line(facts)}.",
        f"Images are {plane} slices. Each tile's label: #slice number (1 = most inferior), "
        "z = position along the slice axis (mm), window (L lung, M mediastinum, B bone). "
        "White bar = scale (1 cm unless marked).",
        f"Montage tiles show rows {region[0]}-{region[1] - 1}, columns {region[2]}-{region[3] - 1} "
        f"(the body); {orientation}.",
        "Windows: " + "; ".join(window_label(w) for w in windows) + ".",
    ]
    lines += [image_line(i + 1, im) for i, im in enumerate(images)]
    if findings:
        lines.append("Automated findings (not a diagnosis): " + " | ".join(findings))
    return "\n".join(lines)
