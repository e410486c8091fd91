"""LLM provider clients behind one interface (:class:`Provider`): Anthropic, OpenAI(-compatible), Gemini, offline.

:func:`get_provider` picks one from the settings: ``CTLENS_LLM_PROVIDER=auto`` takes the first provider whose
key is set (Anthropic, OpenAI, Gemini, in that order; an OpenAI ``base_url`` alone counts, for vLLM/Ollama),
otherwise the offline provider that answers from the findings and says it is offline.

Example:
    >>> from ctlens.core.settings import Settings
    >>> get_provider(Settings(llm_provider="auto", anthropic_api_key=None, openai_api_key=None,
    ...                       openai_base_url=None, gemini_api_key=None)).name
    'offline'
"""

from __future__ import annotations

from ctlens.core.errors import LLMProviderError
from ctlens.core.settings import Settings
from ctlens.llm.providers.base import ChatDone, ChatEvent, ChatImage, ChatPrompt, Provider, TextDelta, Usage
from ctlens.llm.providers.offline import OfflineProvider
from ctlens.llm.providers.pricing import estimate_cost_usd

__all__ = [
    "PROVIDERS",
    "ChatDone",
    "ChatEvent",
    "ChatImage",
    "ChatPrompt",
    "OfflineProvider",
    "Provider",
    "TextDelta",
    "Usage",
    "estimate_cost_usd",
    "get_provider",
]

PROVIDERS = ("anthropic", "openai", "gemini", "offline")


def _secret(value: object) -> str:
    return value.get_secret_value() if value is not None else ""  # type: ignore[attr-defined]


def _configured(settings: Settings) -> str:
    if settings.anthropic_api_key is not None:
        return "anthropic"
    if settings.openai_api_key is not None or settings.openai_base_url:
        return "openai"
    if settings.gemini_api_key is not None:
        return "gemini"
    return "offline"


def get_provider(settings: Settings, name: str | None = None) -> Provider:
    """The provider ``name`` (default ``settings.llm_provider``; ``auto`` = first configured, else offline)."""
    name = (name or settings.llm_provider or "auto").lower()
    if name == "auto":
        name = _configured(settings)
    limit = settings.llm_max_output_tokens
    if name == "anthropic":
        from ctlens.llm.providers.anthropic_provider import AnthropicProvider

        if settings.anthropic_api_key is None:
            raise LLMProviderError("no Anthropic API key is configured", hint="set CTLENS_ANTHROPIC_API_KEY")
        return AnthropicProvider(
            settings.anthropic_model,
            api_key=_secret(settings.anthropic_api_key),
            base_url=settings.anthropic_base_url,
            max_output_tokens=limit,
        )
    if name == "openai":
        from ctlens.llm.providers.openai_provider import OpenAIProvider

        if settings.openai_api_key is None and not settings.openai_base_url:
            raise LLMProviderError("no OpenAI API key or base_url is configured", hint="set CTLENS_OPENAI_API_KEY")
        return OpenAIProvider(
            settings.openai_model,
            api_key=_secret(settings.openai_api_key),
            base_url=settings.openai_base_url,
            max_output_tokens=limit,
        )
    if name == "gemini":
        from ctlens.llm.providers.gemini_provider import GeminiProvider

        if settings.gemini_api_key is None:
            raise LLMProviderError("no Gemini API key is configured", hint="set CTLENS_GEMINI_API_KEY")
        return GeminiProvider(
            settings.gemini_model,
            api_key=_secret(settings.gemini_api_key),
            base_url=settings.gemini_base_url,
            max_output_tokens=limit,
        )
    if name == "offline":
        return OfflineProvider(max_output_tokens=limit)
    raise LLMProviderError(f"unknown LLM provider {name!r}", hint=f"choose one of {', '.join(PROVIDERS)} or auto")
