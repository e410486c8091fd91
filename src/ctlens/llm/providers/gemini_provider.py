"""Google Gemini (streaming ``generate_content``) through the official ``google-genai`` SDK.

Example:
    >>> GeminiProvider("gemini-2.5-flash", api_key="test").name
    'gemini'
"""

from __future__ import annotations

from collections.abc import Iterator

from ctlens.core.errors import LLMProviderError
from ctlens.core.optional import require
from ctlens.llm.providers.base import ChatEvent, ChatPrompt, Provider, TextDelta, Usage
from ctlens.llm.providers.turns import alternating_turns


class GeminiProvider(Provider):
    """Gemini models; ``base_url`` overrides the API endpoint (a proxy or a test server)."""

    name = "gemini"

    def __init__(self, model: str, *, api_key: str, base_url: str | None = None, max_output_tokens: int = 1024) -> None:
        super().__init__(model, max_output_tokens=max_output_tokens)
        self._api_key = api_key
        self._base_url = base_url

    def contents(self, prompt: ChatPrompt) -> list:
        """Gemini ``contents``: earlier turns (role ``model`` for answers), then image parts and the text."""
        types = require("google.genai.types", extra="server")
        out = [
            types.Content(role="model" if role == "assistant" else "user", parts=[types.Part.from_text(text=text)])
            for role, text in alternating_turns(prompt.history)
        ]
        parts = [types.Part.from_bytes(data=img.data, mime_type=img.media_type) for img in prompt.images]
        parts.append(types.Part.from_text(text=prompt.user_text()))
        out.append(types.Content(role="user", parts=parts))
        return out

    def stream(self, prompt: ChatPrompt) -> Iterator[ChatEvent]:
        genai = require("google.genai", extra="server")
        types = require("google.genai.types", extra="server")
        http = types.HttpOptions(base_url=self._base_url) if self._base_url else None
        client = genai.Client(api_key=self._api_key, http_options=http)
        config = types.GenerateContentConfig(system_instruction=prompt.system, max_output_tokens=self.max_output_tokens)
        usage = Usage()
        try:
            for chunk in client.models.generate_content_stream(
                model=self.model, contents=self.contents(prompt), config=config
            ):
                if chunk.text:
                    yield TextDelta(chunk.text)
                meta = chunk.usage_metadata
                if meta is not None and meta.prompt_token_count is not None:
                    usage = Usage(meta.prompt_token_count or 0, meta.candidates_token_count or 0)
        except Exception as exc:  # google-genai raises its own errors.APIError and httpx errors
            if isinstance(exc, LLMProviderError):
                raise
            status = getattr(exc, "code", None) or type(exc).__name__
            raise LLMProviderError(
                f"Gemini request failed ({status})", hint="check CTLENS_GEMINI_API_KEY / CTLENS_GEMINI_MODEL"
            ) from exc
        yield self.done(usage)
