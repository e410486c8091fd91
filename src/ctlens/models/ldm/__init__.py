"""Latent diffusion for slice interpolation, from MONAI's generative blocks (imports only core and torch).

Value ranges end to end: HU -> clipped to [-1024, 3071] -> [0, 1] -> ``2x - 1`` in [-1, 1] (VAE input and
output) -> VAE latent (``z_mu``, per slice, 8x smaller in-plane, 4 channels) -> times ``latent_scale``
(1 / std of the first training batch's latents, stored in the checkpoint) -> diffusion space (about unit
variance). Sampling runs the same chain backwards.

Example:
    >>> from ctlens.models.ldm import UNetConfig, VAEConfig
    >>> VAEConfig().latent_channels, UNetConfig().in_channels
    (4, 8)
"""

from ctlens.models.ldm.diffusion import (
    DiffusionConfig,
    diffusion_loss,
    make_scheduler,
    min_snr_weights,
    sample_latents,
    snr,
)
from ctlens.models.ldm.unet import UNetConfig, build_unet
from ctlens.models.ldm.vae import VAEConfig, build_vae, decode_slices, encode_slices, vae_loss

__all__ = [
    "DiffusionConfig",
    "UNetConfig",
    "VAEConfig",
    "build_unet",
    "build_vae",
    "decode_slices",
    "diffusion_loss",
    "encode_slices",
    "make_scheduler",
    "min_snr_weights",
    "sample_latents",
    "snr",
    "vae_loss",
]
