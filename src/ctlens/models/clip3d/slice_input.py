"""Vectorised per-slice normalisation of a CT volume batch to a 2-D backbone's expected input.

``[B, D, H, W]`` (uint8 0..255, or float in [0, 1]) -> ``[B*D, 3, S, S]``: every slice resized to the
backbone's ``S x S`` (bilinear, antialiased when shrinking), the grey value repeated on three channels
and standardised with the backbone's channel mean / std (ImageNet statistics for DINOv2). One
``F.interpolate`` call does all slices at once; no Python loop over slices.

``windows`` (optional) gives each of the three channels its own display window instead of repeating the
grey value: ``(lo, hi)`` in the input's [0, 1] scale, clipped and stretched to [0, 1] (for CT: lung,
soft-tissue and full-range windows as the RGB channels, the multi-window input used by e.g. the RSNA
intracranial-haemorrhage winners). :func:`hu_windows_to_unit` converts HU windows to that scale.

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

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "hu_windows_to_unit", "slices_to_backbone_input"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def hu_windows_to_unit(
    windows: Sequence[Sequence[float]], hu_range: Sequence[float]
) -> tuple[tuple[float, float], ...]:
    """HU windows ``[(lo, hi), ...]`` -> the same windows in the [0, 1] scale of an input stored over ``hu_range``.

    Example:
        >>> hu_windows_to_unit([(-1000, -500), (-160, 240)], (-1000.0, 1000.0))
        ((0.0, 0.25), (0.42, 0.62))
    """
    lo, hi = float(hu_range[0]), float(hu_range[1])
    return tuple((round((a - lo) / (hi - lo), 6), round((b - lo) / (hi - lo), 6)) for a, b in windows)


def slices_to_backbone_input(
    volumes: torch.Tensor,
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
    windows: Sequence[Sequence[float]] | None = None,
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
    if windows:
        if len(windows) != 3:
            raise ValueError(f"windows: expected one (lo, hi) per RGB channel (3), got {len(windows)}")
        lo = torch.as_tensor([w[0] for w in windows], dtype=dtype, device=x.device).view(1, 3, 1, 1)
        hi = torch.as_tensor([w[1] for w in windows], dtype=dtype, device=x.device).view(1, 3, 1, 1)
        x = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)  # [N, 3, S, S]
    m = torch.as_tensor(mean, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s  # [N, 1, S, S] (grey) broadcasts against [1, 3, 1, 1] to three channels
