"""Visual tower part 2: an x-transformers ``Encoder`` over the slice tokens, read out at a CLS token.

Rotary position embeddings encode the slice order (``rotary_pos_emb``); ``flash`` turns on PyTorch's
fused scaled-dot-product attention in x-transformers (``attn_flash``).

Example:
    >>> import torch
    >>> from ctlens.models.clip3d.config import FusionConfig
    >>> fuse = SliceFusion(in_dim=32, cfg=FusionConfig(dim=16, depth=1, heads=2, flash=False))
    >>> tuple(fuse(torch.randn(3, 7, 32)).shape)
    (3, 16)
"""

from __future__ import annotations

import torch
from torch import nn

from ctlens.models.clip3d.config import FusionConfig

__all__ = ["SliceFusion"]


class SliceFusion(nn.Module):
    """``[B, D, in_dim]`` slice features -> ``[B, dim]`` volume feature (the CLS output)."""

    def __init__(self, in_dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        from x_transformers import Encoder

        self.cfg = cfg
        self.dim = cfg.dim
        self.proj_in = nn.Linear(in_dim, cfg.dim)
        self.cls = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.encoder = Encoder(
            dim=cfg.dim,
            depth=cfg.depth,
            heads=cfg.heads,
            rotary_pos_emb=cfg.rotary,
            attn_flash=cfg.flash,
            attn_dropout=cfg.dropout,
            ff_dropout=cfg.dropout,
        )

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(slices)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return self.encoder(x)[:, 0]
