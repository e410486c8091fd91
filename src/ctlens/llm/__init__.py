"""LLM payloads, image token accounting and provider clients.

``build_payload`` / ``Payload`` (:mod:`ctlens.llm.payload`) and ``image_tokens`` / ``resized_size`` /
``best_size`` / ``limits`` (:mod:`ctlens.llm.tokens`) are exported here, imported on first use so that
``import ctlens.llm`` stays light.

Example:
    >>> from ctlens.llm import image_tokens
    >>> image_tokens(1092, 1092, "anthropic", "claude-sonnet-4-5")
    1521
"""

from __future__ import annotations

from ctlens.core.lazy import lazy_exports

_EXPORTS = {
    "build_payload": "ctlens.llm.payload",
    "Payload": "ctlens.llm.payload",
    "PayloadImage": "ctlens.llm.payload",
    "Tile": "ctlens.llm.payload",
    "image_tokens": "ctlens.llm.tokens",
    "resized_size": "ctlens.llm.tokens",
    "best_size": "ctlens.llm.tokens",
    "limits": "ctlens.llm.tokens",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
