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


def _cloud(settings: Settings, name: str, provider_cls: type, *, configured: bool, missing: str) -> Provider:
    """``provider_cls`` built from the ``{name}_model`` / ``_api_key`` / ``_base_url`` settings, if ``configured``."""
    if not configured:
        raise LLMProviderError(f"no {missing} is configured", hint=f"set CTLENS_{name.upper()}_API_KEY")
    return provider_cls(
        getattr(settings, f"{name}_model"),
        api_key=_secret(getattr(settings, f"{name}_api_key")),
        base_url=getattr(settings, f"{name}_base_url"),
        max_output_tokens=settings.llm_max_output_tokens,
    )


def get_provider(settings: Settings, name: str | None = None) -> Provider:
    """The provider ``name`` (default ``settings.llm_provider``; ``auto`` = first configured, else offline)."""
    name = (name or settings.llm_provider or "auto").lower()
    if name == "auto":
        name = _configured(settings)
    if name == "anthropic":
        from ctlens.llm.providers.anthropic_provider import AnthropicProvider

        configured = settings.anthropic_api_key is not None
        return _cloud(settings, name, AnthropicProvider, configured=configured, missing="Anthropic API key")
    if name == "openai":
        from ctlens.llm.providers.openai_provider import OpenAIProvider

        configured = settings.openai_api_key is not None or bool(settings.openai_base_url)
        return _cloud(settings, name, OpenAIProvider, configured=configured, missing="OpenAI API key or base_url")
    if name == "gemini":
        from ctlens.llm.providers.gemini_provider import GeminiProvider

        configured = settings.gemini_api_key is not None
        return _cloud(settings, name, GeminiProvider, configured=configured, missing="Gemini API key")
    if name == "offline":
        return OfflineProvider(max_output_tokens=settings.llm_max_output_tokens)
    raise LLMProviderError(f"unknown LLM provider {name!r}", hint=f"choose one of {', '.join(PROVIDERS)} or auto")
