"""What a chat question about a study tells the model besides its images: the study context and the prompt.

- :func:`study_context`: de-identified acquisition facts of the stored volume, the analysis status when the
  analysis did not finish, then :func:`findings_context`;
- :func:`findings_context`: the findings summary and the zero-shot line (:mod:`ctlens.llm.findings_text`);
- :func:`payload_prompt`: the chat prompt that sends a payload (its text, which already holds the question, the
  facts and the image legend, then the findings context, its images and the conversation so far).

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> vol = Volume(np.zeros((10, 64, 64), np.int16), spacing=(5.0, 0.7, 0.7))
    >>> print(study_context(vol, {"kernel": "B30f", "PatientName": "not listed"}, analysis_status="failed"))
    Modality CT, 10 slices of 64x64 voxels, spacing (z, y, x) 5, 0.7, 0.7 mm.
    kernel: B30f
    Automatic analysis: failed
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctlens.analysis.findings import Findings
from ctlens.core.volume import Volume
from ctlens.llm.findings_text import findings_summary, zero_shot_line
from ctlens.llm.payload_types import Payload
from ctlens.llm.providers.base import ChatPrompt

__all__ = ["CONTEXT_FACTS", "findings_context", "payload_prompt", "study_context"]

CONTEXT_FACTS = ("manufacturer", "kernel", "convolution_kernel", "body_part", "slice_thickness")
"""The de-identified facts of a study named in its context, in this order (nothing else of its meta)."""


def findings_context(
    findings: Findings | None, zero_shot: Mapping[str, float] | None = None, zero_shot_model: str = "CLIP"
) -> str:
    """The findings summary and the zero-shot line (``zero_shot``: finding -> probability); either may be empty.

    Example:
        >>> print(findings_context(Findings(region="chest"), {"Emphysema": 0.7}, "m"))
        Region: chest
        Candidates (0, best first):
        Zero-shot CLIP scores (m; model output, not a diagnosis), highest 1 of 1: Emphysema 0.70
    """
    parts = [findings_summary(findings) if findings is not None else "", zero_shot_line(zero_shot, zero_shot_model)]
    return "\n".join(part for part in parts if part)


def study_context(
    volume: Volume,
    facts: Mapping[str, Any],
    findings: str = "",
    *,
    analysis_status: str = "done",
    analysis_reason: str = "",
) -> str:
    """The volume's geometry, the :data:`CONTEXT_FACTS` among ``facts``, the analysis status unless ``"done"``,
    then ``findings`` (a :func:`findings_context`); see the module example."""
    spacing = ", ".join(f"{s:.3g}" for s in volume.spacing)
    lines = [
        f"Modality {volume.modality}, {volume.shape[0]} slices of {volume.shape[1]}x{volume.shape[2]} voxels, "
        f"spacing (z, y, x) {spacing} mm."
    ]
    lines += [f"{key.replace('_', ' ')}: {facts[key]}" for key in CONTEXT_FACTS if key in facts]
    if analysis_status != "done":
        lines.append(f"Automatic analysis: {analysis_status} {analysis_reason}".strip())
    return "\n".join(lines + ([findings] if findings else []))


def payload_prompt(
    payload: Payload, question: str, context: str, history: Sequence[tuple[str, str]] = ()
) -> ChatPrompt:
    """The prompt that sends ``payload``: its text (``question`` if it has none) with ``context`` and its images."""
    return ChatPrompt(
        question=payload.text or question, context=context, images=payload.chat_images(), history=list(history)
    )
