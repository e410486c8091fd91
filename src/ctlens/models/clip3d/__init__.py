"""3D CLIP for CT: per-slice DINOv2, x-transformers slice fusion with a CLS token, text tower, InfoNCE.

Example:
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> build_model(load_config("ctclip-tiny")).cfg.embed_dim
    64
"""

from ctlens.models.clip3d.config import (
    CLIP3DConfig,
    FusionConfig,
    InputConfig,
    TextConfig,
    VisionConfig,
    config_dir,
    load_config,
)
from ctlens.models.clip3d.fusion import SliceFusion
from ctlens.models.clip3d.loss import clip_loss, gather_with_grad
from ctlens.models.clip3d.model import CTCLIP, build_model
from ctlens.models.clip3d.slice_input import hu_windows_to_unit, slices_to_backbone_input
from ctlens.models.clip3d.text import TextTower, minilm_path, resolve_text_model
from ctlens.models.clip3d.visual import SliceEncoder, load_dinov2

__all__ = [
    "CLIP3DConfig",
    "CTCLIP",
    "FusionConfig",
    "InputConfig",
    "SliceEncoder",
    "SliceFusion",
    "TextConfig",
    "TextTower",
    "VisionConfig",
    "build_model",
    "clip_loss",
    "config_dir",
    "gather_with_grad",
    "hu_windows_to_unit",
    "load_config",
    "load_dinov2",
    "minilm_path",
    "resolve_text_model",
    "slices_to_backbone_input",
]
