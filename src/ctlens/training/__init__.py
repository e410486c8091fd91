"""Training loops, checkpoints and evaluation metrics (needs torch).

Names are imported on first use.

Example:
    >>> from ctlens.training import ClipTrainConfig
    >>> ClipTrainConfig().__class__.__name__
    'ClipTrainConfig'
"""

from __future__ import annotations

from ctlens.core.lazy import lazy_exports

_TORCH_MODULES = {
    "ctlens.training.clip.train",
    "ctlens.training.clip.evaluation",
    "ctlens.training.ldm.train",
    "ctlens.training.checkpoints",
}
_EXPORTS = {
    "ClipTrainConfig": "ctlens.training.clip.train",
    "train_clip": "ctlens.training.clip.train",
    "evaluate_zero_shot": "ctlens.training.clip.evaluation",
    "evaluate_scores": "ctlens.training.clip.evaluation",
    "TrainConfig": "ctlens.training.ldm.config",
    "load_config": "ctlens.training.ldm.config",
    "train": "ctlens.training.ldm.train",
    "save_checkpoint": "ctlens.training.checkpoints",
    "load_checkpoint": "ctlens.training.checkpoints",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, needs_torch=_TORCH_MODULES)
