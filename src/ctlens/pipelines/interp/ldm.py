"""Slice interpolation with a trained latent-diffusion checkpoint (``method="ldm"``).

The input (HU) is linearly interpolated onto the output grid, mapped to [-1, 1], encoded slice by slice
by the checkpoint's frozen VAE and scaled by ``latent_scale``: that is the conditioning. The 3-D UNet
then samples the thin latents with DDIM (default, ``sampling_steps=20``) or DDPM, window by window of
``depth`` output slices (memory stays bounded; the last window is shifted to end at the last slice),
and the VAE decodes them back to [-1, 1] -> HU. In-plane size is padded (air) to a multiple of
``8 x 2^(unet levels - 1)`` and cropped back.

Example:
    >>> padded_size(500, 32)
    512
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctlens.core.errors import InterpolationError
from ctlens.core.optional import require
from ctlens.core.progress import ProgressCallback
from ctlens.data.slice_profiles import HU_RANGE
from ctlens.pipelines.interp.classic import interpolate_classic
from ctlens.pipelines.interp.progress import progress_iter

__all__ = ["interpolate_ldm", "padded_size"]


def padded_size(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return -(-int(size) // multiple) * multiple


def interpolate_ldm(
    array: np.ndarray,
    positions: np.ndarray,
    *,
    factor: float,
    checkpoint: str | Path | None = None,
    sampler: str = "ddim",
    sampling_steps: int = 20,
    seed: int = 0,
    device: str = "auto",
    progress: bool | ProgressCallback = True,
) -> np.ndarray:
    """Sample thin slices at ``positions`` from ``array`` (HU) with an LDM checkpoint; float32 HU."""
    torch = require("torch", extra="ml")
    from ctlens.data.slice_pairs import hu_to_model, model_to_hu
    from ctlens.models.ldm import (
        UNetConfig,
        VAEConfig,
        build_unet,
        build_vae,
        decode_slices,
        encode_slices,
        make_scheduler,
        sample_latents,
    )
    from ctlens.models.ldm.checkpoint_file import read_checkpoint
    from ctlens.models.ldm.diffusion import DiffusionConfig

    if checkpoint is None:
        raise InterpolationError("method 'ldm' needs checkpoint=", hint="train one: ctlens interp train --config ...")
    tensors, meta = read_checkpoint(checkpoint)
    if meta.get("kind") != "ldm":
        raise InterpolationError(f"not a diffusion checkpoint (kind {meta.get('kind')!r})", path=str(checkpoint))
    if abs(float(meta.get("factor", factor)) - factor) > 1e-6:
        import logging

        logging.getLogger(__name__).warning("checkpoint trained for x%s, used at x%.3g", meta.get("factor"), factor)
    vae_cfg = VAEConfig(**meta["model"]["vae"])
    unet_cfg = UNetConfig(**meta["model"]["unet"])
    diff_cfg = DiffusionConfig(**meta["model"]["diffusion"])
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    vae, unet = build_vae(vae_cfg), build_unet(unet_cfg)
    vae.load_state_dict(_prefixed(tensors, "vae"))
    unet.load_state_dict(_prefixed(tensors, "unet"))
    vae.to(dev).eval()
    unet.to(dev).eval()
    scale = float(meta["latent_scale"])
    scheduler = make_scheduler(diff_cfg, sampler)

    cond_hu = interpolate_classic(array, positions, "linear", progress=False)
    n_out, height, width = cond_hu.shape
    multiple = vae_cfg.downsample * unet_cfg.multiple
    ph, pw = padded_size(height, multiple), padded_size(width, multiple)
    depth = max(unet_cfg.multiple, int(meta.get("depth", 16)))
    depth = padded_size(depth, unet_cfg.multiple)
    out = np.empty((n_out, height, width), np.float32)
    starts = list(range(0, max(1, n_out - depth + 1), depth))
    if not starts or starts[-1] + depth < n_out:
        starts.append(max(0, n_out - depth))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for start in progress_iter(starts, f"latent diffusion ({sampler}-{sampling_steps})", enabled=progress):
            stop = min(n_out, start + depth)
            window = np.full((depth, ph, pw), HU_RANGE[0], np.float32)
            window[: stop - start, :height, :width] = cond_hu[start:stop]
            if stop - start < depth:  # short stack: repeat the last slice
                window[stop - start :, :height, :width] = cond_hu[stop - 1]
            x = hu_to_model(window)
            cond = encode_slices(vae, torch.from_numpy(x)[None, None].to(dev)) * scale
            latents = sample_latents(unet, cond, scheduler, sampling_steps, generator)
            decoded = decode_slices(vae, latents / scale)[0, 0].float().cpu().numpy()
            hu = model_to_hu(decoded)
            out[start:stop] = hu[: stop - start, :height, :width]
    return out


def _prefixed(tensors: dict, name: str) -> dict:
    prefix = f"{name}."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
