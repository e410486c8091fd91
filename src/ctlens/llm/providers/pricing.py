"""Estimated cost of one answer from published per-token prices (USD per million tokens).

Prices change; these are the list prices published on the providers' pricing pages
(anthropic.com/pricing, openai.com/api/pricing, ai.google.dev/gemini-api/docs/pricing) as of 2025
and are used only for an *estimate* shown next to each answer. Unknown models give ``None``.

Example:
    >>> estimate_cost_usd("anthropic", "claude-sonnet-4-6", 1_000_000, 0)
    3.0
    >>> estimate_cost_usd("openai", "my-local-llama", 10, 10) is None
    True
"""

from __future__ import annotations

# (model name prefix, USD per 1M input tokens, USD per 1M output tokens); the longest matching prefix wins.
PRICES: dict[str, list[tuple[str, float, float]]] = {
    "anthropic": [
        ("claude-opus-4", 15.0, 75.0),
        ("claude-opus-4-5", 5.0, 25.0),
        ("claude-sonnet-4", 3.0, 15.0),
        ("claude-3-7-sonnet", 3.0, 15.0),
        ("claude-3-5-sonnet", 3.0, 15.0),
        ("claude-haiku-4", 1.0, 5.0),
        ("claude-3-5-haiku", 0.8, 4.0),
    ],
    "openai": [
        ("gpt-4o-mini", 0.15, 0.60),
        ("gpt-4o", 2.50, 10.0),
        ("gpt-4.1-mini", 0.40, 1.60),
        ("gpt-4.1-nano", 0.10, 0.40),
        ("gpt-4.1", 2.0, 8.0),
        ("gpt-5-mini", 0.25, 2.0),
        ("gpt-5", 1.25, 10.0),
    ],
    "gemini": [
        ("gemini-2.5-pro", 1.25, 10.0),
        ("gemini-2.5-flash-lite", 0.10, 0.40),
        ("gemini-2.5-flash", 0.30, 2.50),
        ("gemini-2.0-flash", 0.10, 0.40),
    ],
    "offline": [("", 0.0, 0.0)],
}


def estimate_cost_usd(provider: str, model: str, input_tokens: int, output_tokens: int) -> float | None:
    """USD for ``input_tokens`` + ``output_tokens`` on ``provider``/``model``, or None if the price is unknown."""
    best: tuple[str, float, float] | None = None
    for prefix, price_in, price_out in PRICES.get(provider, []):
        if model.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, price_in, price_out)
    if best is None:
        return None
    return round((input_tokens * best[1] + output_tokens * best[2]) / 1e6, 6)
