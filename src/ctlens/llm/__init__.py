"""LLM payloads, image token accounting and provider clients.

``build_payload`` (:mod:`ctlens.llm.payload`), ``Payload`` / ``PayloadImage`` / ``Tile``
(:mod:`ctlens.llm.payload_types`) and ``image_tokens`` / ``resized_size`` / ``best_size`` / ``limits``
(:mod:`ctlens.llm.token_costs`) are exported here, imported on first use so that ``import ctlens.llm`` stays light.

The package: the payload builder (:mod:`~ctlens.llm.payload`) with its planner (:mod:`~ctlens.llm.plan`),
renderer (:mod:`~ctlens.llm.labelled_montage`), slice choice (:mod:`~ctlens.llm.slice_selection`) and text
(:mod:`~ctlens.llm.legend`, :mod:`~ctlens.llm.findings_text`); the chat context (:mod:`~ctlens.llm.chat_context`);
report impressions (:mod:`~ctlens.llm.impressions`); provider clients and their message formats
(:mod:`ctlens.llm.providers`).

Example:
    >>> from ctlens.llm import image_tokens
    >>> image_tokens(1092, 1092, "anthropic", "claude-sonnet-4-5")
    1521
"""

from __future__ import annotations

from ctlens.core.lazy import lazy_exports

_EXPORTS = {
    "build_payload": "ctlens.llm.payload",
    "Payload": "ctlens.llm.payload_types",
    "PayloadImage": "ctlens.llm.payload_types",
    "Tile": "ctlens.llm.payload_types",
    "image_tokens": "ctlens.llm.token_costs",
    "resized_size": "ctlens.llm.token_costs",
    "best_size": "ctlens.llm.token_costs",
    "limits": "ctlens.llm.token_costs",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
