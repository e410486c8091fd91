"""OpenAI Chat Completions (streaming) through the official ``openai`` SDK.

Any OpenAI-compatible server works through ``base_url`` (vLLM ``http://host:8000/v1``,
Ollama ``http://localhost:11434/v1``); the API key may then be any non-empty text.

Example:
    >>> OpenAIProvider("gpt-4o", api_key="sk-test").name
    'openai'
"""

from __future__ import annotations

from collections.abc import Iterator

from ctlens.core.errors import LLMProviderError
from ctlens.core.optional import require
from ctlens.llm.providers.base import ChatEvent, ChatPrompt, Provider, TextDelta, Usage
from ctlens.llm.providers.formats import chat_turns, openai_image_url


class OpenAIProvider(Provider):
    """GPT models, or any model behind an OpenAI-compatible ``base_url``."""

    name = "openai"

    def __init__(self, model: str, *, api_key: str, base_url: str | None = None, max_output_tokens: int = 1024) -> None:
        super().__init__(model, max_output_tokens=max_output_tokens)
        self._api_key = api_key or "not-needed"
        self._base_url = base_url

    def messages(self, prompt: ChatPrompt) -> list[dict]:
        """Chat Completions ``messages``: system, earlier turns, then images (data URLs) and text."""
        content = [openai_image_url(img) for img in prompt.images]
        content.append({"type": "text", "text": prompt.user_text()})
        return [
            {"role": "system", "content": prompt.system},
            *chat_turns(prompt.history),
            {"role": "user", "content": content},
        ]

    def stream(self, prompt: ChatPrompt) -> Iterator[ChatEvent]:
        openai = require("openai", extra="server")
        client = openai.OpenAI(api_key=self._api_key, base_url=self._base_url, max_retries=1, timeout=120.0)
        # OpenAI's own newer models take max_completion_tokens; compatible servers (vLLM, Ollama) know max_tokens.
        limit = {"max_tokens" if self._base_url else "max_completion_tokens": self.max_output_tokens}
        usage = Usage()
        try:
            stream = client.chat.completions.create(
                model=self.model,
                messages=self.messages(prompt),
                stream=True,
                stream_options={"include_usage": True},
                **limit,
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    yield TextDelta(chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None)
            raise LLMProviderError(
                f"OpenAI-compatible request failed ({status or type(exc).__name__})",
                hint="check CTLENS_OPENAI_API_KEY / CTLENS_OPENAI_BASE_URL / CTLENS_OPENAI_MODEL",
            ) from exc
        yield self.done(usage)
