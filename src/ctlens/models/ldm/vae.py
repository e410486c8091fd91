"""Per-slice VAE: MONAI ``AutoencoderKL`` (2-D), 8x in-plane compression, 4 latent channels, no depth compression.

Input and output are slices in [-1, 1] (HU window [-1024, 3071] -> [0, 1] -> ``2x - 1``). Loss: L1
reconstruction + ``kl_weight`` x KL divergence (Rombach et al., CVPR 2022, without the adversarial and
perceptual terms).

Example:
    >>> import torch
    >>> cfg = VAEConfig(channels=(8, 8, 8, 8), num_res_blocks=1, norm_num_groups=4)
    >>> vae = build_vae(cfg)
    >>> z = encode_slices(vae, torch.zeros(1, 1, 3, 32, 32))
    >>> tuple(z.shape), tuple(decode_slices(vae, z).shape)
    ((1, 4, 3, 4, 4), (1, 1, 3, 32, 32))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from monai.networks.nets import AutoencoderKL

__all__ = ["VAEConfig", "build_vae", "decode_slices", "encode_slices", "vae_loss"]


@dataclass
class VAEConfig:
    """``channels`` has 4 levels -> 3 downsamplings -> 8x; ``latent_channels`` 4."""

    channels: tuple[int, ...] = (64, 128, 256, 256)
    num_res_blocks: int = 2
    latent_channels: int = 4
    attention_levels: tuple[bool, ...] = field(default_factory=lambda: (False, False, False, False))
    norm_num_groups: int = 32
    kl_weight: float = 1e-6

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.attention_levels = tuple(bool(a) for a in self.attention_levels)[: len(self.channels)]
        self.attention_levels += (False,) * (len(self.channels) - len(self.attention_levels))

    @property
    def downsample(self) -> int:
        """In-plane compression factor (2 ** (levels - 1))."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def build_vae(cfg: VAEConfig) -> AutoencoderKL:
    """The 2-D ``AutoencoderKL`` for ``cfg`` (1 channel in and out, no attention blocks inside by default)."""
    return AutoencoderKL(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=cfg.channels,
        num_res_blocks=cfg.num_res_blocks,
        attention_levels=cfg.attention_levels,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    )


def _flatten(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    b, c, d, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * d, c, h, w), b, d


def _unflatten(x: torch.Tensor, b: int, d: int) -> torch.Tensor:
    _, c, h, w = x.shape
    return x.reshape(b, d, c, h, w).permute(0, 2, 1, 3, 4)


def encode_slices(vae: AutoencoderKL, x: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """``[B, 1, D, H, W]`` in [-1, 1] -> latent means ``[B, 4, D, H/8, W/8]`` (slice by slice, in chunks)."""
    flat, b, d = _flatten(x)
    parts = [vae.encode(flat[i : i + chunk])[0] for i in range(0, flat.shape[0], chunk)]
    return _unflatten(torch.cat(parts), b, d)


def decode_slices(vae: AutoencoderKL, z: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Latents ``[B, 4, D, h, w]`` -> slices ``[B, 1, D, 8h, 8w]`` (about [-1, 1])."""
    flat, b, d = _flatten(z)
    parts = [vae.decode(flat[i : i + chunk]) for i in range(0, flat.shape[0], chunk)]
    return _unflatten(torch.cat(parts), b, d)


def vae_loss(vae: AutoencoderKL, slices: torch.Tensor, kl_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 reconstruction + ``kl_weight`` x KL (per-element mean) on 2-D slices ``[N, 1, H, W]`` in [-1, 1].

    Example:
        >>> import torch
        >>> vae = build_vae(VAEConfig(channels=(8, 8), num_res_blocks=1, norm_num_groups=4))
        >>> loss, parts = vae_loss(vae, torch.zeros(2, 1, 8, 8), 1e-6)
        >>> sorted(parts)
        ['kl', 'recon']
    """
    recon, mu, sigma = vae(slices)
    l1 = torch.nn.functional.l1_loss(recon.float(), slices.float())
    kl = 0.5 * torch.mean(mu.float() ** 2 + sigma.float() ** 2 - torch.log(sigma.float() ** 2 + 1e-12) - 1)
    return l1 + kl_weight * kl, {"recon": float(l1.detach()), "kl": float(kl.detach())}
