"""What a chat question about a stored study sends: service glue from the study's artifacts to an LLM prompt.

The words are the llm layer's (:mod:`ctlens.llm.chat_context`, :mod:`ctlens.llm.findings_text`); here the stored
result (findings JSON, de-identified facts, analysis status, zero-shot record) is read into its types and the
payload is built (:func:`ctlens.api.services.build_payload`), or, when it cannot be, a few key slices are
rendered instead. Only pixels rendered from the stored, de-identified volume and facts from its de-identified
meta ever reach a provider; DICOM headers never do (the raw upload is not even kept). The llm text modules import
the analysis layer, so they are imported at the first question, not at service start.

Example:
    >>> _stored_findings({"findings": {"region": "chest", "candidates": [{"diameter_mm": 8.0}]}}).candidates[0].kind
    ''
    >>> _stored_findings({"findings": None}) is None
    True
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from ctlens.api import services
from ctlens.api.artifacts import Artifacts
from ctlens.api.slice_png import render_slice
from ctlens.core.errors import CTLensError
from ctlens.llm.providers import ChatImage, ChatPrompt, Provider
from ctlens.llm.slice_selection import peak_slices

if TYPE_CHECKING:
    from ctlens.analysis.findings import Findings


def _stored_findings(result: dict[str, Any]) -> Findings | None:
    """The study's findings (stored as their JSON), or None when the analysis left none."""
    from ctlens.analysis.findings import Findings

    stored = result.get("findings")
    return Findings.from_dict(stored) if isinstance(stored, dict) and stored else None


def _findings_context(result: dict[str, Any]) -> str:
    """The findings summary and the zero-shot line of a stored study result (either may be empty)."""
    from ctlens.llm.chat_context import findings_context

    zero_shot = result.get("zero_shot") or {}
    return findings_context(_stored_findings(result), zero_shot.get("probabilities"), zero_shot.get("model", "CLIP"))


def _study_context(art: Artifacts) -> str:
    """Acquisition facts (de-identified), the analysis status and the findings context of a stored study."""
    from ctlens.llm.chat_context import study_context

    analysis = art.result.get("analysis") or {}
    return study_context(
        art.volume,
        art.result.get("facts") or {},
        _findings_context(art.result),
        analysis_status=analysis.get("status", "unknown"),
        analysis_reason=analysis.get("reason", ""),
    )


def _downscaled_png(png: bytes, edge: int = 768) -> bytes:
    """``png`` shrunk to at most ``edge`` pixels on its long side (unchanged when already smaller)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    if max(image.size) <= edge:
        return png
    image.thumbnail((edge, edge))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _key_slice_images(art: Artifacts) -> list[ChatImage]:
    """Key slices (the heatmap's peaks, else evenly spread) rendered from the de-identified volume."""
    window = "lung" if art.volume.modality == "CT" else "auto"
    out = []
    for k in peak_slices(art.heatmap, art.volume.shape[0]):
        png = render_slice(art.volume.array, k, window=window, modality=art.volume.modality)
        z = art.volume.world((k, 0, 0))[2]
        label = f"slice {k + 1} of {art.volume.shape[0]} (z = {z:.1f} mm), {window} window"
        out.append(ChatImage(_downscaled_png(png), label=label))
    return out


def study_prompt(
    ctx, art: Artifacts, question: str, provider: Provider, history: list[tuple[str, str]]
) -> tuple[ChatPrompt, int | None, str]:
    """The prompt for a question about a study: (prompt, token estimate, where the images came from)."""
    if provider.offline:
        return ChatPrompt(question=question, context=_study_context(art), history=history), None, "none"
    try:
        payload = services.build_payload(
            art.volume,
            question,
            provider.name,
            provider.model,
            ctx.settings.llm_token_budget,
            findings=_stored_findings(art.result),
        )
    except CTLensError:  # the payload cannot fit the budget: a few key slices instead
        images = _key_slice_images(art)
        prompt = ChatPrompt(question=question, context=_study_context(art), images=images, history=history)
        return prompt, None, "key-slices"
    from ctlens.llm.chat_context import payload_prompt

    # The payload's text already holds the question, the de-identified facts and the image legend.
    prompt = payload_prompt(payload, question, _findings_context(art.result), history)
    return prompt, payload.token_estimate, "payload"


def payload_summary(ctx, art: Artifacts, question: str, provider: str) -> dict[str, Any]:
    """``GET /payload``: the images (base64) and text a question would send, with the token estimate."""
    model = getattr(ctx.settings, f"{provider}_model")
    payload = services.build_payload(
        art.volume, question, provider, model, ctx.settings.llm_token_budget, findings=_stored_findings(art.result)
    )
    return {
        **payload.to_dict(include_request=False),
        "provider": provider,
        "model": model,
        "token_estimate": payload.token_estimate,
        "text": payload.text,
        "context": _study_context(art),
        "images": [
            {"label": im.title, "media_type": "image/png", "data": base64.b64encode(im.png).decode("ascii")}
            for im in payload.images
        ],
    }
