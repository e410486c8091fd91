"""Symmetric InfoNCE (CLIP) loss; under DDP, features of all ranks are gathered with gradients.

Each rank scores its local images against all texts of the global batch (and vice versa), with the
targets at its own offset; ``torch.distributed.nn.functional.all_gather`` keeps the autograd graph, so
gradients flow back to the local shard. DDP's gradient averaging then equals the single-process
gradient of the mean loss over the global batch (Radford et al. 2021; the open_clip scheme).

Example:
    >>> import torch
    >>> img = torch.nn.functional.normalize(torch.eye(4), dim=-1)
    >>> round(float(clip_loss(img, img, torch.tensor(100.0))), 4)
    0.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["clip_loss", "gather_with_grad"]


def _distributed() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(all ranks' rows concatenated, offset of this rank's rows)``; identity when not distributed."""
    if not _distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(x.contiguous())
    rank = torch.distributed.get_rank()
    offset = sum(p.shape[0] for p in parts[:rank])
    return torch.cat(parts, dim=0), offset


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy; ``image``/``text`` L2-normalised ``[n, e]``."""
    all_image, offset = gather_with_grad(image)
    all_text, _ = gather_with_grad(text)
    targets = torch.arange(image.shape[0], device=image.device) + offset
    logits_per_image = logit_scale * image @ all_text.t()
    logits_per_text = logit_scale * text @ all_image.t()
    return 0.5 * (
        F.cross_entropy(logits_per_image.float(), targets) + F.cross_entropy(logits_per_text.float(), targets)
    )
