"""What a chat question about a study sends: the de-identified payload (or key slices) and the findings summary.

Only pixels rendered from the stored, de-identified volume and facts from its de-identified meta ever reach a
provider; DICOM headers never do (the raw upload is not even kept).

Example:
    >>> summarize_findings({"candidates": [{"diameter_mm": 12.5, "score": 0.9}], "warnings": ["cropped"]})
    'Candidates (1, best first):\\n  1. region 12 mm, score 0.90\\nWarnings: cropped'
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from ctlens.api import services
from ctlens.api.artifacts import Artifacts
from ctlens.api.render import render_slice
from ctlens.core.errors import CTLensError
from ctlens.llm.providers import ChatImage, ChatPrompt, Provider

MAX_CONTEXT_CHARS = 3000
_SKIP_KEYS = (
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


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, str):
        return clip_text(value, 240)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) <= 6 and all(isinstance(v, int | float) for v in value):
        return "(" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + ")"
    return None


def _flat(item: dict[str, Any]) -> str:
    parts = [f"{k}={s}" for k, v in item.items() if (s := _scalar(v)) is not None and k not in _SKIP_KEYS]
    return ", ".join(parts[:12])


def candidate_line(c: dict[str, Any]) -> str:
    """One candidate in words (falls back to its fields when it is not an analysis candidate)."""
    if "diameter_mm" not in c:
        return _flat(c)
    parts = [f"{c.get('kind') or 'region'} {float(c['diameter_mm']):.0f} mm"]
    if c.get("side"):
        parts.append(f"{c['side']} side")
    if isinstance(c.get("slice_range"), list | tuple) and len(c["slice_range"]) == 2:
        parts.append(f"slices {c['slice_range'][0]}-{c['slice_range'][1]}")
    if "mean_hu" in c:
        parts.append(f"mean {float(c['mean_hu']):.0f} HU")
    if "volume_ml" in c:
        parts.append(f"volume {float(c['volume_ml']):.1f} mL")
    if "score" in c:
        parts.append(f"score {float(c['score']):.2f}")
    return ", ".join(parts)


def summarize_findings(findings: dict[str, Any] | None) -> str:
    """A short, plain-text summary of a findings dict for the model (and for the offline answer)."""
    if not findings:
        return ""
    lines: list[str] = []
    for key, value in findings.items():
        if key in _SKIP_KEYS:
            continue
        if key == "candidates" and isinstance(value, list):
            lines.append(f"Candidates ({len(value)}, best first):")
            lines += [f"  {i + 1}. {candidate_line(c)}" for i, c in enumerate(value[:8]) if isinstance(c, dict)]
        elif isinstance(value, dict):
            flat = _flat(value)
            if flat:
                lines.append(f"{key.replace('_', ' ').capitalize()}: {flat}")
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            lines.append(f"{key.replace('_', ' ').capitalize()}: {'; '.join(clip_text(v, 200) for v in value[:8])}")
        elif (s := _scalar(value)) is not None:
            lines.append(f"{key.replace('_', ' ').capitalize()}: {s}")
    return "\n".join(lines)[:MAX_CONTEXT_CHARS]


def zero_shot_line(zero_shot: dict[str, Any] | None, top: int = 5) -> str:
    """The highest zero-shot CLIP scores of a study as one line for the model, labelled as model output.

    Example:
        >>> zero_shot_line({"model": "ct-clip", "probabilities": {"Emphysema": 0.81, "Cardiomegaly": 0.2}}, top=1)
        'Zero-shot CLIP scores (ct-clip; model output, not a diagnosis), highest 1 of 2: Emphysema 0.81'
    """
    probs = (zero_shot or {}).get("probabilities") or {}
    if not probs:
        return ""
    best = sorted(probs.items(), key=lambda kv: -float(kv[1]))[:top]
    scores = ", ".join(f"{name} {float(p):.2f}" for name, p in best)
    model = zero_shot.get("model", "CLIP") if zero_shot else "CLIP"
    label = f"Zero-shot CLIP scores ({model}; model output, not a diagnosis)"
    return f"{label}, highest {len(best)} of {len(probs)}: {scores}"


def findings_context(result: dict[str, Any]) -> str:
    """The findings summary and the zero-shot line of a stored study result (either may be empty).

    Example:
        >>> result = {"findings": {"region": "chest"}, "zero_shot": {"model": "m", "probabilities": {"Emphysema": 0.7}}}
        >>> print(findings_context(result))
        Region: chest
        Zero-shot CLIP scores (m; model output, not a diagnosis), highest 1 of 1: Emphysema 0.70
    """
    parts = [summarize_findings(result.get("findings")), zero_shot_line(result.get("zero_shot"))]
    return "\n".join(part for part in parts if part)


def study_context(art: Artifacts) -> str:
    """Acquisition facts (de-identified) and the findings summary of a stored study."""
    result = art.result
    vol = art.volume
    facts = [
        f"Modality {vol.modality}, {vol.shape[0]} slices of {vol.shape[1]}x{vol.shape[2]} voxels, "
        f"spacing (z, y, x) {', '.join(f'{s:.3g}' for s in vol.spacing)} mm."
    ]
    for key in ("manufacturer", "kernel", "convolution_kernel", "body_part", "slice_thickness"):
        if key in (result.get("facts") or {}):
            facts.append(f"{key.replace('_', ' ')}: {result['facts'][key]}")
    analysis = result.get("analysis") or {}
    if analysis.get("status") != "done":
        facts.append(f"Automatic analysis: {analysis.get('status', 'unknown')} {analysis.get('reason', '')}".strip())
    summary = findings_context(result)
    return "\n".join(facts + ([summary] if summary else []))


def key_slices(art: Artifacts, count: int = 3) -> list[int]:
    """Slices to show: the hottest ones of the heatmap, else evenly spread through the volume."""
    n = art.volume.shape[0]
    if art.heatmap is not None and n > 1:
        peaks = np.asarray(art.heatmap).reshape(n, -1).max(axis=1)
        order = [int(k) for k in np.argsort(-peaks, kind="stable") if peaks[k] > 0]
        chosen: list[int] = []
        for k in order:
            if all(abs(k - c) > max(1, n // 10) for c in chosen):
                chosen.append(k)
            if len(chosen) == count:
                return sorted(chosen)
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(count, n) + 2)[1:-1]} or {0})


def _downscaled_png(png: bytes, edge: int = 768) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    if max(image.size) <= edge:
        return png
    image.thumbnail((edge, edge))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def fallback_images(art: Artifacts) -> list[ChatImage]:
    """Key slices rendered from the de-identified volume (when the payload builder is not available)."""
    window = "lung" if art.volume.modality == "CT" else "auto"
    out = []
    for k in key_slices(art):
        png = render_slice(art.volume.array, k, window=window, modality=art.volume.modality)
        z = art.volume.world((k, 0, 0))[2]
        out.append(ChatImage(_downscaled_png(png), label=f"slice {k} (z = {z:.1f} mm), {window} window"))
    return out


def study_prompt(
    ctx, art: Artifacts, question: str, provider: Provider, history: list[tuple[str, str]]
) -> tuple[ChatPrompt, int | None, str]:
    """The prompt for a question about a study: (prompt, token estimate, where the images came from)."""
    context = study_context(art)
    if provider.offline:
        return ChatPrompt(question=question, context=context, history=history), None, "none"
    try:
        payload = services.build_payload(
            art.volume,
            question,
            provider.name,
            provider.model,
            ctx.settings.llm_token_budget,
            findings=art.result.get("findings"),
        )
    except CTLensError:  # the payload layer is missing or cannot fit the budget: a few key slices instead
        images = fallback_images(art)
        prompt = ChatPrompt(question=question, context=context, images=images, history=history)
        return prompt, None, "key-slices"
    images = [ChatImage(data, label, media) for data, media, label in services.payload_images(payload)]
    # The payload's text already holds the question, the de-identified facts and the image legend.
    text = services.payload_text(payload) or question
    prompt = ChatPrompt(question=text, context=findings_context(art.result), images=images, history=history)
    return prompt, services.payload_token_estimate(payload), "payload"


def payload_summary(ctx, art: Artifacts, question: str, provider: str) -> dict[str, Any]:
    """``GET /payload``: the images (base64) and text a question would send, with the token estimate."""
    model = getattr(ctx.settings, f"{provider}_model")
    payload = services.build_payload(
        art.volume, question, provider, model, ctx.settings.llm_token_budget, findings=art.result.get("findings")
    )
    images = services.payload_images(payload)
    record = payload.to_dict(include_request=False) if hasattr(payload, "to_dict") else {}
    return {
        **record,
        "provider": provider,
        "model": model,
        "token_estimate": services.payload_token_estimate(payload),
        "text": services.payload_text(payload),
        "context": study_context(art),
        "images": [
            {"label": label, "media_type": media, "data": base64.b64encode(data).decode("ascii")}
            for data, media, label in images
        ],
    }
