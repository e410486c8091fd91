"""Visual tower part 1: a DINOv2 ViT (``transformers.Dinov2Model``) applied to every slice of a volume.

Weights: ``VisionConfig.pretrained`` names a local directory or a Hugging Face id that is looked up in
the local cache only (``local_files_only=True``, no network); the same weights as the
``facebook/dinov2-*`` releases. When nothing is found the backbone is built from the config with random
weights. The choice is logged (INFO) and kept in :attr:`SliceEncoder.weights_source`.

Example:
    >>> import torch
    >>> from ctlens.models.clip3d.config import VisionConfig
    >>> enc = SliceEncoder(VisionConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1,
    ...                                 num_attention_heads=2))
    >>> tuple(enc(torch.zeros(2, 5, 24, 24, dtype=torch.uint8)).shape), enc.weights_source
    ((2, 5, 32), 'random init')
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ctlens.models.clip3d.config import VisionConfig
from ctlens.models.clip3d.slice_input import hu_windows_to_unit, slices_to_backbone_input

__all__ = ["SliceEncoder", "load_dinov2"]

log = logging.getLogger(__name__)

POOLS = ("cls", "mean", "max", "mean_max")
"""Per-slice read-outs: the CLS token, the mean or max of the patch tokens, or mean and max concatenated."""


def load_dinov2(cfg: VisionConfig) -> tuple[nn.Module, str]:
    """``(Dinov2Model, source)``: pretrained from a local dir / the HF cache when present, else random init."""
    from transformers import Dinov2Config, Dinov2Model

    if cfg.pretrained:
        try:
            model = Dinov2Model.from_pretrained(cfg.pretrained, local_files_only=True)
            source = f"pretrained {cfg.pretrained}"
            if model.config.hidden_size != cfg.hidden_size:
                log.warning(
                    "DINOv2 %s has hidden size %d, config says %d: using the weights' architecture",
                    cfg.pretrained,
                    model.config.hidden_size,
                    cfg.hidden_size,
                )
            log.info("CLIP3D visual backbone: %s", source)
            return model, source
        except (OSError, ValueError) as exc:
            where = "directory" if Path(cfg.pretrained).exists() else "local Hugging Face cache"
            log.warning(
                "CLIP3D visual backbone: %s not usable from the %s (%s); random init",
                cfg.pretrained,
                where,
                str(exc).splitlines()[0][:200],
            )
    config = Dinov2Config(
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        mlp_ratio=cfg.mlp_ratio,
    )
    log.info("CLIP3D visual backbone: random init (%d layers, width %d)", cfg.num_hidden_layers, cfg.hidden_size)
    return Dinov2Model(config), "random init"


class SliceEncoder(nn.Module):
    """``[B, D, H, W]`` volume batch -> ``[B, D, C]`` slice features from a per-slice DINOv2."""

    def __init__(self, cfg: VisionConfig, hu_range: tuple[float, float] = (-1000.0, 1000.0)) -> None:
        super().__init__()
        self.cfg = cfg
        self.windows = hu_windows_to_unit(cfg.windows, hu_range) if cfg.windows else None
        self.backbone, self.weights_source = load_dinov2(cfg)
        if cfg.pool not in POOLS:
            raise ValueError(f"vision.pool must be one of {POOLS}, got {cfg.pool!r}")
        self.width = int(self.backbone.config.hidden_size) * (2 if cfg.pool == "mean_max" else 1)
        self.image_size = int(cfg.image_size)
        if cfg.grad_checkpointing and not cfg.freeze:
            enable = getattr(self.backbone, "activation_checkpointing_enable", None)  # transformers >= 5 name
            (enable or self.backbone.gradient_checkpointing_enable)()
        if cfg.freeze:
            self.backbone.requires_grad_(False)
        mask_token = getattr(getattr(self.backbone, "embeddings", None), "mask_token", None)
        if isinstance(mask_token, nn.Parameter):
            mask_token.requires_grad_(False)  # only used for masked-image pretraining; unused here (and by DDP)

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(pixel_values=pixels).last_hidden_state  # [N, 1 + patches, C] (after layernorm)
        patches = hidden[:, 1:]
        if self.cfg.pool == "cls":
            return hidden[:, 0]
        if self.cfg.pool == "max":
            return patches.amax(dim=1)
        if self.cfg.pool == "mean_max":  # mean for diffuse change, max for small local findings
            return torch.cat([patches.mean(dim=1), patches.amax(dim=1)], dim=-1)
        return patches.mean(dim=1)

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        b, d = volumes.shape[:2]
        dtype = next(self.backbone.parameters()).dtype
        pixels = slices_to_backbone_input(
            volumes, self.image_size, self.cfg.mean, self.cfg.std, dtype=dtype, windows=self.windows
        )
        chunk = self.cfg.slice_chunk or pixels.shape[0]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.freeze):
            feats = [self._features(pixels[i : i + chunk]) for i in range(0, pixels.shape[0], chunk)]
        return torch.cat(feats).reshape(b, d, -1)
