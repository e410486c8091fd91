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
    "METHODS": "ctlens.pipelines.interpolate",
    "interpolate": "ctlens.pipelines.interpolate",
    "interpolate_array": "ctlens.pipelines.interpolate",
    "run_eval": "ctlens.pipelines.interp_eval",
    "evaluate_array": "ctlens.pipelines.interp_eval",
    "psnr": "ctlens.pipelines.interp_metrics",
    "ssim": "ctlens.pipelines.interp_metrics",
    "embed_volume": "ctlens.pipelines.embed",
    "embed_volumes": "ctlens.pipelines.embed",
    "embed_text": "ctlens.pipelines.embed",
    "load_clip": "ctlens.pipelines.embed",
    "zero_shot": "ctlens.pipelines.zero_shot",
    "add_zero_shot": "ctlens.pipelines.zero_shot",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, needs_torch={"ctlens.pipelines.embed", "ctlens.pipelines.zero_shot"})
