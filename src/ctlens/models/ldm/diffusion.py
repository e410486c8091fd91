"""Gaussian diffusion with min-SNR-gamma loss weighting and DDPM / DDIM sampling (MONAI schedulers).

Min-SNR-gamma (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy", ICCV 2023):
with ``SNR(t) = alpha_bar_t / (1 - alpha_bar_t)``, the per-timestep loss weight for epsilon
prediction is ``min(SNR(t), gamma) / SNR(t)`` (gamma = 5 in the paper); for v-prediction it is
``min(SNR, gamma) / (SNR + 1)``.

Example:
    >>> import torch
    >>> s = make_scheduler(DiffusionConfig(), "ddpm")
    >>> w = min_snr_weights(s.alphas_cumprod, torch.tensor([0, 999]), gamma=5.0)
    >>> bool(w[0] < 1.0), float(w[1])
    (True, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

__all__ = ["DiffusionConfig", "diffusion_loss", "make_scheduler", "min_snr_weights", "sample_latents", "snr"]


@dataclass
class DiffusionConfig:
    """Noise schedule (Stable Diffusion's scaled-linear betas) and the min-SNR gamma."""

    num_train_timesteps: int = 1000
    schedule: str = "scaled_linear_beta"
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    min_snr_gamma: float = 5.0
    prediction_type: str = "epsilon"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_scheduler(cfg: DiffusionConfig, kind: str = "ddpm") -> DDPMScheduler | DDIMScheduler:
    """A MONAI ``DDPMScheduler`` or ``DDIMScheduler`` (no sample clipping: latents are unbounded)."""
    common = dict(
        num_train_timesteps=cfg.num_train_timesteps,
        schedule=cfg.schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        prediction_type=cfg.prediction_type,
        clip_sample=False,
    )
    if kind == "ddpm":
        return DDPMScheduler(**common)
    if kind == "ddim":
        return DDIMScheduler(**common)
    raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {kind!r}")


def snr(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``alpha_bar_t / (1 - alpha_bar_t)`` at ``timesteps``."""
    a = alphas_cumprod.to(timesteps.device)[timesteps].double()
    return (a / (1.0 - a)).float()


def min_snr_weights(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float = 5.0, prediction_type: str = "epsilon"
) -> torch.Tensor:
    """Min-SNR-gamma weights (module doc): ``min(SNR, gamma) / SNR`` for epsilon, ``/(SNR + 1)`` for v."""
    s = snr(alphas_cumprod, timesteps)
    clipped = torch.clamp(s, max=gamma)
    if prediction_type == "epsilon":
        return clipped / s
    if prediction_type == "v_prediction":
        return clipped / (s + 1.0)
    if prediction_type == "sample":
        return clipped
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def diffusion_loss(
    unet: torch.nn.Module,
    latents: torch.Tensor,
    cond: torch.Tensor,
    scheduler: DDPMScheduler,
    gamma: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Min-SNR-weighted MSE of the predicted noise for clean ``latents`` given ``cond`` (same shape).

    Timesteps and noise come from ``generator`` (CPU), so a resumed run draws the same ones.
    """
    b = latents.shape[0]
    t = torch.randint(0, scheduler.num_train_timesteps, (b,), generator=generator).to(latents.device)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    noisy = scheduler.add_noise(latents, noise, t)
    pred = unet(torch.cat([noisy, cond], dim=1), t)
    if scheduler.prediction_type == "epsilon":
        target = noise
    elif scheduler.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, t)
    else:
        target = latents
    per_sample = ((pred.float() - target.float()) ** 2).mean(dim=tuple(range(1, pred.ndim)))
    weights = min_snr_weights(scheduler.alphas_cumprod, t, gamma, scheduler.prediction_type).to(per_sample.device)
    return (weights * per_sample).mean()


@torch.no_grad()
def sample_latents(
    unet: torch.nn.Module,
    cond: torch.Tensor,
    scheduler: DDPMScheduler | DDIMScheduler,
    steps: int = 20,
    generator: torch.Generator | None = None,
    wrap: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> torch.Tensor:
    """Sample clean latents (shape of ``cond``) with ``steps`` DDPM / DDIM steps; ``wrap`` adds a progress bar.

    Example:
        >>> import torch
        >>> from ctlens.models.ldm.unet import UNetConfig, build_unet
        >>> unet = build_unet(UNetConfig(channels=(8, 8), attention_levels=(False, False), num_res_blocks=1,
        ...                              norm_num_groups=4, num_head_channels=4))
        >>> s = make_scheduler(DiffusionConfig(num_train_timesteps=50), "ddim")
        >>> sample_latents(unet, torch.zeros(1, 4, 2, 4, 4), s, steps=2).shape
        torch.Size([1, 4, 2, 4, 4])
    """
    scheduler.set_timesteps(steps, device=cond.device)
    x = torch.randn(cond.shape, generator=generator).to(cond.device, cond.dtype)
    timesteps = scheduler.timesteps
    for t in wrap(timesteps) if wrap else timesteps:
        t_batch = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        eps = unet(torch.cat([x, cond], dim=1), t_batch)
        if isinstance(scheduler, DDPMScheduler):
            x, _ = scheduler.step(eps, int(t), x, generator=generator)
        else:
            x, _ = scheduler.step(eps, int(t), x, generator=generator)
    return x
