"""The 3D CLIP model: per-slice DINOv2 -> slice fusion (CLS) -> projection; text tower -> projection.

Both embeddings are L2-normalised into a shared ``embed_dim`` space; the learnable temperature is CLIP's
``logit_scale`` (log of the inverse temperature, clamped at log 100; Radford et al. 2021).

Example:
    >>> import torch
    >>> from ctlens.models.clip3d.config import load_config
    >>> model = build_model(load_config("ctclip-tiny")).eval()
    >>> with torch.no_grad():
    ...     v = model.encode_volume(torch.zeros(1, 32, 64, 64, dtype=torch.uint8))
    ...     t = model.encode_text(["Cardiomegaly is present."])
    >>> tuple(v.shape), tuple(t.shape), round(float(v.norm()), 4)
    ((1, 64), (1, 64), 1.0)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ctlens.models.clip3d.config import CLIP3DConfig
from ctlens.models.clip3d.fusion import SliceFusion
from ctlens.models.clip3d.text import TextTower
from ctlens.models.clip3d.visual import SliceEncoder

__all__ = ["CTCLIP", "build_model"]


class CTCLIP(nn.Module):
    """Contrastive volume-text model built from a :class:`~ctlens.models.clip3d.config.CLIP3DConfig`."""

    def __init__(self, cfg: CLIP3DConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = SliceEncoder(cfg.vision, cfg.input.hu_range)
        self.fusion = SliceFusion(self.visual.width, cfg.fusion)
        self.text = TextTower(cfg.text)
        self.visual_proj = nn.Linear(cfg.fusion.dim, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.init_logit_scale)))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def encode_volume(self, volumes: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``[B, D, H, W]`` (uint8 or float in [0, 1]) -> ``[B, embed_dim]``."""
        x = self.visual_proj(self.fusion(self.visual(volumes)))
        return F.normalize(x, dim=-1) if normalize else x

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True):
        """Token tensors (from ``model.text.tokenize``) -> ``[N, embed_dim]``."""
        x = self.text_proj(self.text(input_ids, attention_mask))
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        """Raw strings -> ``[N, embed_dim]``."""
        return self.encode_tokens(**self.text.tokenize(list(texts), self.device), normalize=normalize)

    def scale(self) -> torch.Tensor:
        """The inverse temperature ``exp(logit_scale)``, clamped to CLIP's maximum of 100."""
        return self.logit_scale.clamp(max=self.cfg.max_logit_scale).exp()

    def forward(
        self,
        volumes: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(volume embeddings, text embeddings, inverse temperature)`` for the contrastive loss.

        Give token tensors, or ``text_features`` (pooled, unprojected: a frozen text tower's cache).
        """
        if text_features is not None:
            text = F.normalize(self.text_proj(text_features.to(self.text_proj.weight.dtype)), dim=-1)
        else:
            text = self.encode_tokens(input_ids, attention_mask)
        return self.encode_volume(volumes), text, self.scale()


def build_model(cfg: CLIP3DConfig) -> CTCLIP:
    """A :class:`CTCLIP` for ``cfg`` (pretrained parts loaded offline when configured and present)."""
    if not math.isfinite(cfg.init_logit_scale):
        raise ValueError("init_logit_scale must be finite")
    return CTCLIP(cfg)
