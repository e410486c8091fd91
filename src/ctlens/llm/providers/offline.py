"""The provider used when no LLM key is configured: it answers from the automatic findings and says so.

Example:
    >>> from ctlens.llm.providers.base import ChatPrompt
    >>> text, done = OfflineProvider().answer(ChatPrompt(question="Nodules?", context="2 candidates"))
    >>> "offline" in text and done.cost_usd == 0.0
    True
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

from ctlens.llm.providers.base import ChatEvent, ChatPrompt, Provider, TextDelta, Usage


def rough_tokens(text: str) -> int:
    """About four characters per token (the usual English rule of thumb), at least 1."""
    return max(1, math.ceil(len(text) / 4))


def image_tokens_estimate(data: bytes) -> int:
    """Anthropic's published rule of thumb, ``width * height / 750`` tokens (docs "Vision"); 1000 if not PNG."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return math.ceil(width * height / 750)
    return 1000


class OfflineProvider(Provider):
    """No network: restates the study context; token counts are estimates, cost is zero."""

    name = "offline"
    offline = True

    def __init__(self, model: str = "findings-summary", *, max_output_tokens: int = 1024) -> None:
        super().__init__(model, max_output_tokens=max_output_tokens)

    def stream(self, prompt: ChatPrompt) -> Iterator[ChatEvent]:
        context = prompt.context.strip() or "No automatic findings are available for this study."
        text = (
            "I am ctlens's offline assistant: no language model is configured (set CTLENS_ANTHROPIC_API_KEY, "
            "CTLENS_OPENAI_API_KEY or CTLENS_GEMINI_API_KEY), so I cannot read the images or reason about "
            f"your question ({prompt.question.strip()[:200]!r}). Here is what the automatic analysis found:\n\n"
            f"{context}"
        )
        for word in text.split(" "):
            yield TextDelta(word + " ")
        image_tokens = sum(image_tokens_estimate(img.data) for img in prompt.images)
        usage = Usage(rough_tokens(prompt.system + prompt.user_text()) + image_tokens, rough_tokens(text))
        yield self.done(usage)
