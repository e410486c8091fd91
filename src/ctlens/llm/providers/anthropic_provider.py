"""Anthropic Messages API (streaming) through the official ``anthropic`` SDK.

Example:
    >>> AnthropicProvider("claude-sonnet-4-6", api_key="sk-test").name
    'anthropic'
"""

from __future__ import annotations

from collections.abc import Iterator

from ctlens.core.errors import LLMProviderError
from ctlens.core.optional import require
from ctlens.llm.providers.base import ChatEvent, ChatPrompt, Provider, TextDelta, Usage
from ctlens.llm.providers.formats import anthropic_messages


class AnthropicProvider(Provider):
    """Claude models; ``base_url`` points the SDK at another server (a proxy or a test server)."""

    name = "anthropic"

    def __init__(self, model: str, *, api_key: str, base_url: str | None = None, max_output_tokens: int = 1024) -> None:
        super().__init__(model, max_output_tokens=max_output_tokens)
        self._api_key = api_key
        self._base_url = base_url

    def messages(self, prompt: ChatPrompt) -> list[dict]:
        """Messages API ``messages``: earlier turns, then images and text in the last user message."""
        return anthropic_messages(prompt.images, prompt.user_text(), prompt.history)

    def stream(self, prompt: ChatPrompt) -> Iterator[ChatEvent]:
        anthropic = require("anthropic", extra="server")
        client = anthropic.Anthropic(api_key=self._api_key, base_url=self._base_url, max_retries=1, timeout=120.0)
        try:
            with client.messages.stream(
                model=self.model,
                max_tokens=self.max_output_tokens,
                system=prompt.system,
                messages=self.messages(prompt),
            ) as stream:
                for text in stream.text_stream:
                    yield TextDelta(text)
                final = stream.get_final_message()
        except anthropic.APIError as exc:
            status = getattr(exc, "status_code", None)
            raise LLMProviderError(
                f"Anthropic request failed ({status or type(exc).__name__})",
                hint="check CTLENS_ANTHROPIC_API_KEY / CTLENS_ANTHROPIC_MODEL",
            ) from exc
        yield self.done(Usage(final.usage.input_tokens, final.usage.output_tokens))
