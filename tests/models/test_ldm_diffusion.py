"""Min-SNR weights against the formula, the loss weighting, and the MONAI blocks' shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctlens.models.ldm import (
    DiffusionConfig,
    UNetConfig,
    VAEConfig,
    build_unet,
    build_vae,
    decode_slices,
    diffusion_loss,
    encode_slices,
    make_scheduler,
    min_snr_weights,
    sample_latents,
)


@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_weights_match_the_formula(gamma: float) -> None:
    scheduler = make_scheduler(DiffusionConfig(), "ddpm")
    t = torch.arange(0, 1000, 37)
    # independent computation from the betas (Hang et al. 2023): SNR = abar / (1 - abar), w = min(SNR, g) / SNR
    betas = np.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=np.float64) ** 2
    abar = np.cumprod(1 - betas)[t.numpy()]
    snr = abar / (1 - abar)
    expected = np.minimum(snr, gamma) / snr
    np.testing.assert_allclose(min_snr_weights(scheduler.alphas_cumprod, t, gamma).numpy(), expected, rtol=1e-4)
    assert min_snr_weights(scheduler.alphas_cumprod, t, gamma).max() <= 1.0 + 1e-6
    v = min_snr_weights(scheduler.alphas_cumprod, t, gamma, "v_prediction").numpy()
    np.testing.assert_allclose(v, np.minimum(snr, gamma) / (snr + 1), rtol=1e-4)


def test_weighting_changes_the_loss_and_gamma_large_means_unweighted() -> None:
    torch.manual_seed(0)
    unet = build_unet(
        UNetConfig(
            channels=(8, 8), attention_levels=(False, False), num_res_blocks=1, norm_num_groups=4, num_head_channels=4
        )
    )
    x0, cond = torch.randn(2, 4, 4, 4, 4), torch.randn(2, 4, 4, 4, 4)
    scheduler = make_scheduler(DiffusionConfig(), "ddpm")
    plain = diffusion_loss(unet, x0, cond, scheduler, 1e9, torch.Generator().manual_seed(1))
    weighted = diffusion_loss(unet, x0, cond, scheduler, 1.0, torch.Generator().manual_seed(1))
    assert float(weighted.detach()) < float(plain.detach())  # weights <= 1, and < 1 where SNR > gamma


def test_vae_is_8x_per_slice_and_ddim_keeps_shapes() -> None:
    vae = build_vae(VAEConfig(channels=(4, 8, 8, 8), num_res_blocks=1, norm_num_groups=4))
    z = encode_slices(vae, torch.zeros(1, 1, 5, 64, 48))
    assert tuple(z.shape) == (1, 4, 5, 8, 6)  # no depth compression, 8x in-plane, 4 channels
    assert tuple(decode_slices(vae, z).shape) == (1, 1, 5, 64, 48)
    unet = build_unet(
        UNetConfig(
            channels=(8, 8), attention_levels=(False, False), num_res_blocks=1, norm_num_groups=4, num_head_channels=4
        )
    )
    for kind in ("ddim", "ddpm"):
        out = sample_latents(
            unet, torch.zeros(1, 4, 4, 8, 8), make_scheduler(DiffusionConfig(num_train_timesteps=20), kind), 3
        )
        assert tuple(out.shape) == (1, 4, 4, 8, 8) and torch.isfinite(out).all()
