"""3-D diffusion UNet (MONAI ``DiffusionModelUNet``) predicting the noise of a latent stack of thin slices.

Conditioning: the thick slices, linearly interpolated onto the thin grid and encoded slice by slice
by the same (frozen) VAE, are concatenated to the noisy latent as extra channels, so
``in_channels = 2 x latent_channels`` and ``out_channels = latent_channels``.

Example:
    >>> import torch
    >>> cfg = UNetConfig(channels=(8, 8), attention_levels=(False, False), num_res_blocks=1,
    ...                  norm_num_groups=4, num_head_channels=4)
    >>> unet = build_unet(cfg)
    >>> unet(torch.zeros(1, 8, 4, 4, 4), torch.tensor([10])).shape
    torch.Size([1, 4, 4, 4, 4])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from monai.networks.nets import DiffusionModelUNet

__all__ = ["UNetConfig", "build_unet"]


@dataclass
class UNetConfig:
    """Levels of the UNet (each but the last halves depth, height and width of the latent)."""

    channels: tuple[int, ...] = (64, 128, 256)
    attention_levels: tuple[bool, ...] = field(default_factory=lambda: (False, False, True))
    num_res_blocks: int = 2
    norm_num_groups: int = 32
    num_head_channels: int = 32
    latent_channels: int = 4

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.attention_levels = tuple(bool(a) for a in self.attention_levels)

    @property
    def in_channels(self) -> int:
        """Noisy latent + conditioning latent."""
        return 2 * self.latent_channels

    @property
    def multiple(self) -> int:
        """Latent depth / height / width must be a multiple of this."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def build_unet(cfg: UNetConfig) -> DiffusionModelUNet:
    """The 3-D ``DiffusionModelUNet`` for ``cfg``."""
    return DiffusionModelUNet(
        spatial_dims=3,
        in_channels=cfg.in_channels,
        out_channels=cfg.latent_channels,
        channels=cfg.channels,
        attention_levels=cfg.attention_levels,
        num_res_blocks=cfg.num_res_blocks,
        norm_num_groups=cfg.norm_num_groups,
        num_head_channels=cfg.num_head_channels,
    )
