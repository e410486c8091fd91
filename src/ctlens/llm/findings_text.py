"""Analysis findings in words for a language model: every way a :class:`~ctlens.analysis.findings.Findings`, its
:class:`~ctlens.analysis.findings.Candidate` s and zero-shot CLIP scores become LLM text.

- :func:`payload_findings_lines`: the payload's findings (the measurements line, then one sentence per candidate
  with its voxel box), which :func:`ctlens.llm.payload.build_payload` writes after "Automated findings";
- :func:`findings_summary`: the study context of a chat (region, method, measurements, numbered candidates,
  warnings, zero-shot scores), at most :data:`MAX_SUMMARY_CHARS` characters;
- :func:`zero_shot_line`: the highest zero-shot scores of a study, labelled as model output;
- :func:`candidate_box`: a candidate's voxel box in the payload's half-open terms.

Slices are numbered as everywhere a person reads them: 1-based, slice 1 = the most inferior slice of the display
volume (:mod:`ctlens.preprocess.display`), so ``slice_range`` ``(10, 12)`` (0-based indices) reads "slices 11-13".
Rows and columns stay 0-based voxel indices of the display volume, as the payload legend's tile regions.

Example:
    >>> f = Findings(region="chest", method="demo", measurements={"laa950_percent": 5.712})
    >>> f.candidates.append(Candidate(diameter_mm=12.4, score=0.9, kind="nodule", side="right",
    ...                               slice_range=(10, 12), bbox=(10, 52, 34, 12, 64, 46)))
    >>> print(*payload_findings_lines(f), sep="\\n")
    chest measurements: laa950_percent 5.71
    right nodule, 12 mm (score 0.90) at slices 11-13, rows 52-64, columns 34-46
    >>> print(findings_summary(f))
    Region: chest
    Method: demo
    Measurements: laa950_percent=5.712
    Candidates (1, best first):
      1. nodule 12 mm, right side, slices 11-13, mean 0 HU, volume 0.0 mL, score 0.90
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctlens.analysis.findings import ZERO_SHOT_NOTE, Candidate, Findings
from ctlens.llm.payload_types import Box

__all__ = [
    "MAX_SUMMARY_CHARS",
    "candidate_box",
    "candidate_sentence",
    "candidate_words",
    "clip_text",
    "findings_summary",
    "measurements_line",
    "payload_findings_lines",
    "zero_shot_line",
]

MAX_SUMMARY_CHARS = 3000
"""The chat summary of a study's findings is cut to this many characters."""
SUMMARY_CANDIDATES = 8
"""The chat summary lists at most this many candidates (best first) and warnings."""
_SKIP_KEYS = frozenset(
    (
        "heatmap",
        "roi_mask",
        "mask",
        "timings",
        "parameters",
        "params",
        "schema_version",
        "input_shape",
        "has_heatmap",
        "has_roi_mask",
        "slice_boxes",
        "features",
    )
)
"""Keys of a measurements dict that are no text for a model (arrays, bookkeeping)."""


def clip_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis when cut.

    Example:
        >>> clip_text("lungs: threshold + airway tracing", 20)
        'lungs: threshold +…'
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


def candidate_box(candidate: Candidate) -> Box:
    """``(z0, z1, y0, y1, x0, x1)``, half-open, of the candidate's inclusive ``bbox`` ``(z0, y0, x0, z1, y1, x1)``.

    Example:
        >>> candidate_box(Candidate(bbox=(12, 250, 105, 20, 344, 234)))
        (12, 21, 250, 345, 105, 235)
    """
    z0, y0, x0, z1, y1, x1 = (int(v) for v in candidate.bbox)
    return (z0, z1 + 1, y0, y1 + 1, x0, x1 + 1)


def candidate_sentence(candidate: Candidate) -> str:
    """A candidate as the payload says it: side and kind, size, mean HU, score, and where (1-based slices, 0-based
    rows and columns).

    Example:
        >>> candidate_sentence(Candidate(kind="mass", side="left", diameter_mm=46.2, mean_hu=31.0, score=0.8,
        ...                              bbox=(12, 250, 105, 20, 344, 234)))
        'left mass, 46 mm, mean 31 HU (score 0.80) at slices 13-21, rows 250-344, columns 105-234'
    """
    text = candidate.kind or "finding"
    if candidate.side:
        text = f"{candidate.side} {text}"
    if candidate.diameter_mm:
        text += f", {candidate.diameter_mm:.0f} mm"
    if candidate.mean_hu:
        text += f", mean {candidate.mean_hu:.0f} HU"
    text += f" (score {candidate.score:.2f})"
    z0, z1, y0, y1, x0, x1 = candidate_box(candidate)
    return f"{text} at slices {z0 + 1}-{z1}, rows {y0}-{y1 - 1}, columns {x0}-{x1 - 1}"


def candidate_words(candidate: Candidate) -> str:
    """A candidate as the chat summary says it: kind and size, side, slices, mean HU, volume, score.

    Example:
        >>> candidate_words(Candidate(diameter_mm=12.5, score=0.9, slice_range=(3, 5)))
        'region 12 mm, slices 4-6, mean 0 HU, volume 0.0 mL, score 0.90'
    """
    parts = [f"{candidate.kind or 'region'} {candidate.diameter_mm:.0f} mm"]
    if candidate.side:
        parts.append(f"{candidate.side} side")
    first, last = candidate.slice_range
    parts += [
        f"slices {first + 1}-{last + 1}",
        f"mean {candidate.mean_hu:.0f} HU",
        f"volume {candidate.volume_ml:.1f} mL",
        f"score {candidate.score:.2f}",
    ]
    return ", ".join(parts)


def measurements_line(findings: Findings, limit: int = 12) -> str:
    """``"<region> measurements: name value, ..."`` of the short scalar measurements (at most ``limit``), or "".

    Example:
        >>> measurements_line(Findings(region="head", measurements={"brain_volume_ml": 1234.5, "ok": True}))
        'head measurements: brain_volume_ml 1.23e+03'
    """
    values = [
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in findings.measurements.items()
        if isinstance(v, int | float | str) and not isinstance(v, bool) and len(str(v)) < 40
    ]
    return f"{findings.region} measurements: {', '.join(values[:limit])}" if values else ""


def payload_findings_lines(findings: Findings) -> list[str]:
    """The findings of a payload's text block: the measurements line (if any), then :func:`candidate_sentence`
    of each candidate, in order."""
    head = measurements_line(findings)
    return ([head] if head else []) + [candidate_sentence(c) for c in findings.candidates]


def _scalar(value: Any) -> str | None:
    """A short text for a number, text or short numeric sequence; None for anything else."""
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, str):
        return clip_text(value, 240)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) <= 6 and all(isinstance(v, int | float) for v in value):
        return "(" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + ")"
    return None


def _flat(values: Mapping[str, Any]) -> str:
    """``name=value, ...`` of the first 12 scalar entries."""
    parts = [f"{k}={s}" for k, v in values.items() if k not in _SKIP_KEYS and (s := _scalar(v)) is not None]
    return ", ".join(parts[:12])


def findings_summary(findings: Findings) -> str:
    """A short, plain-text summary of ``findings`` for the model (and for the offline answer); see the module
    example. Empty parts (no method, no measurements, no warnings, no zero-shot scores) are left out."""
    lines = [f"Region: {clip_text(findings.region, 240)}"]
    if findings.method:
        lines.append(f"Method: {clip_text(findings.method, 240)}")
    if measured := _flat(findings.measurements):
        lines.append(f"Measurements: {measured}")
    lines.append(f"Candidates ({len(findings.candidates)}, best first):")
    lines += [f"  {i + 1}. {candidate_words(c)}" for i, c in enumerate(findings.candidates[:SUMMARY_CANDIDATES])]
    if findings.warnings:
        lines.append(f"Warnings: {'; '.join(clip_text(w, 200) for w in findings.warnings[:SUMMARY_CANDIDATES])}")
    if scores := _flat(findings.zero_shot):
        lines += [f"Zero shot: {scores}", f"Zero shot note: {ZERO_SHOT_NOTE}"]
    return "\n".join(lines)[:MAX_SUMMARY_CHARS]


def zero_shot_line(probabilities: Mapping[str, float] | None, model: str = "CLIP", top: int = 5) -> str:
    """The ``top`` zero-shot CLIP scores as one line for the model, labelled as model output ("" when none).

    Example:
        >>> zero_shot_line({"Emphysema": 0.81, "Cardiomegaly": 0.2}, "ct-clip", top=1)
        'Zero-shot CLIP scores (ct-clip; model output, not a diagnosis), highest 1 of 2: Emphysema 0.81'
    """
    if not probabilities:
        return ""
    best = sorted(probabilities.items(), key=lambda kv: -float(kv[1]))[:top]
    scores = ", ".join(f"{name} {float(p):.2f}" for name, p in best)
    label = f"Zero-shot CLIP scores ({model}; model output, not a diagnosis)"
    return f"{label}, highest {len(best)} of {len(probabilities)}: {scores}"
