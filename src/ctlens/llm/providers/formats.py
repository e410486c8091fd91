"""The providers' message formats as plain JSON: the one place that knows each API's content blocks.

Anthropic Messages, OpenAI Chat Completions and Responses, Gemini ``generateContent`` (REST JSON). The SDK clients
(:mod:`~ctlens.llm.providers.anthropic_provider`, :mod:`~ctlens.llm.providers.openai_provider`) build their
``messages`` from these blocks; :func:`payload_request` is the request body of a payload
(:class:`ctlens.llm.payload_types.Payload`) for its provider, as ``ctlens payload`` writes it.

Example:
    >>> image = ChatImage(b"png", "lung montage")
    >>> anthropic_messages([image], "Any nodule?")[0]["content"][0]["source"]["data"]
    'cG5n'
    >>> openai_image_url(image, detail="high")["image_url"]
    {'url': 'data:image/png;base64,cG5n', 'detail': 'high'}
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ctlens.llm.providers.base import ChatImage
from ctlens.llm.providers.turns import alternating_turns
from ctlens.llm.token_costs import rule_for

if TYPE_CHECKING:
    from ctlens.llm.payload_types import Payload

__all__ = [
    "anthropic_image",
    "anthropic_messages",
    "chat_turns",
    "data_url",
    "gemini_contents",
    "openai_chat_messages",
    "openai_image_url",
    "openai_responses_input",
    "payload_request",
]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def data_url(image: ChatImage) -> str:
    """``data:<media type>;base64,...`` of ``image`` (how OpenAI takes inline images)."""
    return f"data:{image.media_type};base64,{_b64(image.data)}"


def chat_turns(history: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Earlier ``(role, text)`` turns as ``{"role", "content"}`` messages (Anthropic and OpenAI alike), made
    acceptable to every provider by :func:`~ctlens.llm.providers.turns.alternating_turns`."""
    return [{"role": role, "content": said} for role, said in alternating_turns(list(history))]


def anthropic_image(image: ChatImage) -> dict[str, Any]:
    """An Anthropic image content block (base64 source)."""
    return {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": _b64(image.data)}}


def anthropic_messages(
    images: Sequence[ChatImage], text: str, history: Sequence[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """``messages=`` for the Messages API: earlier turns, then the images and the text (Anthropic's recommended
    order) in the last user message."""
    content = [*(anthropic_image(im) for im in images), {"type": "text", "text": text}]
    return [*chat_turns(history), {"role": "user", "content": content}]


def openai_image_url(image: ChatImage, detail: str | None = None) -> dict[str, Any]:
    """A Chat Completions ``image_url`` part (a data URL; ``detail`` only when given)."""
    url: dict[str, Any] = {"url": data_url(image)}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


def openai_chat_messages(images: Sequence[ChatImage], text: str, detail: str) -> list[dict[str, Any]]:
    """``messages=`` for Chat Completions: one user message, the text, then the images with ``detail``."""
    content = [{"type": "text", "text": text}, *(openai_image_url(im, detail) for im in images)]
    return [{"role": "user", "content": content}]


def openai_responses_input(images: Sequence[ChatImage], text: str, detail: str) -> list[dict[str, Any]]:
    """``input=`` for the Responses API: one user message, the text, then the images with ``detail``."""
    content: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
    content += [{"type": "input_image", "image_url": data_url(im), "detail": detail} for im in images]
    return [{"role": "user", "content": content}]


def gemini_contents(images: Sequence[ChatImage], text: str, media_resolution: str | None) -> list[dict[str, Any]]:
    """``contents`` for ``generateContent`` (REST JSON): inline images, then the text; Gemini 3 parts carry their
    ``media_resolution`` level (``low`` / ``medium`` / ``high``), older models take None."""
    parts: list[dict[str, Any]] = []
    for im in images:
        part: dict[str, Any] = {"inlineData": {"mimeType": im.media_type, "data": _b64(im.data)}}
        if media_resolution is not None:
            part["mediaResolution"] = {"level": f"MEDIA_RESOLUTION_{media_resolution.upper()}"}
        parts.append(part)
    return [{"role": "user", "parts": [*parts, {"text": text}]}]


def payload_request(payload: Payload) -> dict[str, Any]:
    """The request body fields of ``payload`` for its provider (OpenAI: both APIs, by name).

    OpenAI images go with ``detail`` (default ``high``); Gemini 3 images with the payload's media resolution.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> from ctlens.llm.payload import build_payload
        >>> vol = Volume(np.full((4, 64, 64), -1000, np.int16), spacing=(5.0, 0.8, 0.8))
        >>> vol.array[:, 8:56, 8:56] = 40
        >>> p = build_payload(vol, "Any mass?", "openai", "gpt-4.1", token_budget=3000, progress=False)
        >>> sorted(payload_request(p)), payload_request(p)["responses"]["input"][0]["content"][0]["type"]
        (['chat_completions', 'responses'], 'input_text')
    """
    images, text = payload.chat_images(), payload.text
    if payload.provider == "anthropic":
        return {"model": payload.model, "messages": anthropic_messages(images, text)}
    if payload.provider == "openai":
        detail = payload.detail or "high"
        return {
            "chat_completions": {"model": payload.model, "messages": openai_chat_messages(images, text, detail)},
            "responses": {"model": payload.model, "input": openai_responses_input(images, text, detail)},
        }
    level = (payload.detail or "high") if rule_for("gemini", payload.model).kind == "gemini_level" else None
    return {"model": payload.model, "contents": gemini_contents(images, text, level)}
