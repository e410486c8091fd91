"""Vectorised per-slice normalisation of a CT volume batch to a 2-D backbone's expected input.

``[B, D, H, W]`` (uint8 0..255, or float in [0, 1]) -> ``[B*D, 3, S, S]``: every slice resized to the
backbone's ``S x S`` (bilinear, antialiased when shrinking), the grey value repeated on three channels
and standardised with the backbone's channel mean / std (ImageNet statistics for DINOv2). One
``F.interpolate`` call does all slices at once; no Python loop over slices.

Example:
    >>> import torch
    >>> x = torch.full((2, 3, 20, 20), 255, dtype=torch.uint8)
    >>> out = slices_to_backbone_input(x, 14)
    >>> tuple(out.shape), round(float(out[0, 0, 0, 0]), 3)
    ((6, 3, 14, 14), 2.249)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "slices_to_backbone_input"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def slices_to_backbone_input(
    volumes: torch.Tensor,
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``[B, D, H, W]`` volumes -> ``[B*D, 3, image_size, image_size]`` normalised slices (module doc)."""
    if volumes.ndim != 4:
        raise ValueError(f"expected volumes [B, D, H, W], got shape {tuple(volumes.shape)}")
    b, d, h, w = volumes.shape
    x = volumes.reshape(b * d, 1, h, w)
    x = x.to(dtype) / 255.0 if volumes.dtype == torch.uint8 else x.to(dtype)
    if (h, w) != (image_size, image_size):
        shrink = h > image_size or w > image_size
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=shrink)
    m = torch.as_tensor(mean, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s  # broadcasting [N, 1, S, S] against [1, 3, 1, 1] gives the three channels
