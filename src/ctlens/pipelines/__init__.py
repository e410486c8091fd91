"""Inference pipelines: slice interpolation, embeddings, zero-shot findings.

Names are imported on first use (torch only where a pipeline needs it).

Example:
    >>> from ctlens.pipelines import METHODS
    >>> "flow" in METHODS
    True
"""

from __future__ import annotations

from ctlens.core.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "ctlens.pipelines.interp.interpolate",
    "interpolate": "ctlens.pipelines.interp.interpolate",
    "interpolate_array": "ctlens.pipelines.interp.interpolate",
    "run_eval": "ctlens.pipelines.interp.evaluation",
    "evaluate_array": "ctlens.pipelines.interp.evaluation",
    "psnr": "ctlens.pipelines.interp.metrics",
    "ssim": "ctlens.pipelines.interp.metrics",
    "embed_volume": "ctlens.pipelines.embed",
    "embed_volumes": "ctlens.pipelines.embed",
    "embed_text": "ctlens.pipelines.embed",
    "load_clip": "ctlens.pipelines.embed",
    "zero_shot": "ctlens.pipelines.zero_shot",
    "add_zero_shot": "ctlens.pipelines.zero_shot",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, needs_torch={"ctlens.pipelines.embed", "ctlens.pipelines.zero_shot"})
