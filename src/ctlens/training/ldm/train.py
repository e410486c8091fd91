"""Training loops for the slice-interpolation VAE (``kind="vae"``) and latent diffusion model (``"ldm"``).

* batches are deterministic functions of (seed, step, rank), and noise / timesteps come from a CPU
  generator seeded the same way, so resuming from a checkpoint continues with exactly the same losses;
* mixed precision (bfloat16 autocast) on CUDA when ``train.amp``; DDP when started by ``torchrun``
  (``WORLD_SIZE`` > 1: NCCL on GPU, Gloo on CPU; rank 0 validates and saves);
* every ``val_every`` steps: PSNR / SSIM (VAE: reconstructions; LDM: DDIM samples, synthesised slices
  only) appended to ``metrics.jsonl`` and a PNG grid ``val_<step>.png``; every ``save_every`` steps and
  at the end: a checkpoint (:mod:`ctlens.training.checkpoints`).

The VAE is frozen while the diffusion model trains; the LDM checkpoint carries the VAE weights too,
so ``interpolate(..., method="ldm", checkpoint=...)`` needs one file pair.

Example:
    >>> world_info({})
    (1, 0, 0)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctlens.core.errors import InterpolationError
from ctlens.core.progress import ProgressCallback
from ctlens.core.volume import Volume
from ctlens.data.slice_pairs import SliceInterpolationDataset, model_to_hu, thin_axis_array
from ctlens.models.ldm import (
    VAEConfig,
    build_unet,
    build_vae,
    decode_slices,
    diffusion_loss,
    encode_slices,
    make_scheduler,
    sample_latents,
    vae_loss,
)
from ctlens.pipelines.interp.metrics import psnr, ssim
from ctlens.pipelines.interp.progress import progress_iter
from ctlens.training.checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
    state_of,
)
from ctlens.training.ldm.config import TrainConfig

__all__ = ["TrainResult", "expand_sources", "load_vae", "train", "world_info"]


@dataclass
class TrainResult:
    """Losses per step (this run), the last checkpoint JSON and the validation records."""

    losses: dict[int, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    validations: list[dict[str, Any]] = field(default_factory=list)


def world_info(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from torchrun's environment variables."""
    env = os.environ if env is None else env
    return int(env.get("WORLD_SIZE", 1)), int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0))


def expand_sources(paths: Sequence[str | Path], depth: int, axis: str = "auto") -> list[Volume]:
    """Load every CT under ``paths`` (folders searched like the eval harness) with >= ``depth`` thin slices."""
    from ctlens.io import load
    from ctlens.io.discover import volume_inputs
    from ctlens.io.loader import file_kind

    volumes: list[Volume] = []
    for entry in paths:
        root = Path(entry)
        if not root.exists():
            raise InterpolationError("training data not found", path=root, hint="fix data.paths in the config")
        items: list[tuple[Path, dict[str, Any]]] = []
        if root.is_dir():
            items += [(f, {"uneven": "resample"} if f.is_dir() else {}) for f in volume_inputs(root)]
        else:
            items.append((root, {"uneven": "resample"} if file_kind(root) == "dicom" else {}))
        for path, options in items:
            volume = load(path, **options)
            if str(volume.modality).upper() == "CT" and thin_axis_array(volume, axis).shape[0] >= depth:
                volumes.append(volume)
    if not volumes:
        raise InterpolationError(f"no CT with at least {depth} thin slices", path=", ".join(map(str, paths)))
    return volumes


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _batch(dataset: SliceInterpolationDataset, step: int, size: int, world: int, rank: int) -> dict[str, torch.Tensor]:
    start = (step * world + rank) * size
    items = [dataset[(start + j) % len(dataset)] for j in range(size)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def load_vae(checkpoint: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """A frozen VAE (eval mode) from a VAE or LDM checkpoint, and the checkpoint's JSON."""
    tensors, meta = load_checkpoint(checkpoint)
    cfg = VAEConfig(**meta["model"]["vae"])
    vae = build_vae(cfg)
    vae.load_state_dict(state_of(tensors, "vae"))
    vae.to(device).eval().requires_grad_(False)
    return vae, meta


def _slices_of(thin: torch.Tensor, per_item: int) -> torch.Tensor:
    b, c, d, h, w = thin.shape
    pick = torch.linspace(0, d - 1, min(per_item, d)).round().long()
    return thin[:, :, pick].permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)


def _grid_png(columns: list[np.ndarray], path: Path) -> None:
    from PIL import Image

    from ctlens.io.files import atomic_output

    tiles = [(np.clip((np.nan_to_num(c) + 160.0) / 400.0, 0, 1) * 255).astype(np.uint8) for c in columns]
    image = Image.fromarray(np.concatenate(tiles, axis=1))
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")


def _validate(
    kind: str,
    models: dict[str, torch.nn.Module],
    batch: dict[str, torch.Tensor],
    cfg: TrainConfig,
    step: int,
    latent_scale: float,
    device: torch.device,
    out_dir: Path,
) -> dict[str, Any]:
    factor = cfg.data.factor
    with torch.no_grad():
        if kind == "vae":
            vae = getattr(models["vae"], "module", models["vae"])
            vae.eval()
            slices = _slices_of(batch["thin"], cfg.data.slices_per_item).to(device)
            recon, _, _ = vae(slices)
            vae.train()
            truth = model_to_hu(slices[:, 0].float().cpu().numpy())
            pred = model_to_hu(recon[:, 0].float().cpu().numpy())
            scored_truth, scored_pred = truth, pred
            columns = [truth[0], pred[0]]
        else:
            vae, unet = models["vae"], getattr(models["unet"], "module", models["unet"])
            unet.eval()
            cond = encode_slices(vae, batch["cond"][:1].to(device)) * latent_scale
            generator = torch.Generator().manual_seed(cfg.train.seed + 7)
            latents = sample_latents(
                unet, cond, make_scheduler(cfg.model.diffusion, "ddim"), cfg.train.val_sampling_steps, generator
            )
            unet.train()
            sample = decode_slices(vae, latents / latent_scale)
            truth = model_to_hu(batch["thin"][0, 0].numpy())
            pred = model_to_hu(sample[0, 0].float().cpu().numpy())
            scored = np.arange(truth.shape[0]) % factor != 0
            scored_truth, scored_pred = truth[scored], pred[scored]
            middle = int(np.flatnonzero(scored)[len(np.flatnonzero(scored)) // 2])
            columns = [model_to_hu(batch["cond"][0, 0, middle].numpy()), pred[middle], truth[middle]]
    record = {"step": step, "psnr": psnr(scored_pred, scored_truth), "ssim": ssim(scored_pred, scored_truth)}
    _grid_png(columns, out_dir / f"val_{step:07d}.png")
    with open(out_dir / "metrics.jsonl", "a") as handle:
        handle.write(
            json.dumps({k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in record.items()})
            + "\n"
        )
    return record


def train(
    kind: str,
    cfg: TrainConfig,
    *,
    volumes: Sequence[Volume] | None = None,
    progress: bool | ProgressCallback = True,
) -> TrainResult:
    """Train the VAE (``kind="vae"``) or the latent diffusion model (``"ldm"``) as ``cfg`` says.

    ``volumes`` replaces ``data.paths`` (tests, notebooks). Resumes from ``train.resume``.
    """
    if kind not in ("vae", "ldm"):
        raise InterpolationError(f"kind must be 'vae' or 'ldm', got {kind!r}")
    world, rank, local_rank = world_info()
    device = _device(cfg.train.device, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out_dir = Path(cfg.train.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = list(volumes) if volumes is not None else expand_sources(cfg.data.paths, cfg.data.depth, cfg.data.axis)
    data = cfg.data

    def pairs(paths: list, length: int, seed: int) -> SliceInterpolationDataset:
        return SliceInterpolationDataset(
            paths,
            factor=data.factor,
            depth=data.depth,
            patch=data.patch,
            simulation=data.simulation,
            axis=data.axis,
            length=length,
            seed=seed,
        )

    dataset = pairs(sources, 10**9, cfg.train.seed)
    val_sources = expand_sources(data.val_paths, data.depth, data.axis) if data.val_paths else sources
    val_set = pairs(val_sources, 1, cfg.train.seed + 1)
    torch.manual_seed(cfg.train.seed)
    models: dict[str, torch.nn.Module] = {}
    latent_scale = 1.0
    if kind == "vae":
        trainable = build_vae(cfg.model.vae).to(device)
        models["vae"] = trainable
    else:
        if not cfg.vae_checkpoint:
            raise InterpolationError("vae_checkpoint is not set", hint="train the VAE first: ctlens interp train-vae")
        vae, vae_meta = load_vae(cfg.vae_checkpoint, device)
        cfg.model.vae = VAEConfig(**vae_meta["model"]["vae"])
        if cfg.model.unet.latent_channels != cfg.model.vae.latent_channels:
            raise InterpolationError("unet.latent_channels differs from the VAE's", path=str(cfg.vae_checkpoint))
        trainable = build_unet(cfg.model.unet).to(device)
        models["vae"], models["unet"] = vae, trainable
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    start = 0
    resume = cfg.train.resume
    resume_path = latest_checkpoint(out_dir) if resume == "auto" else (None if resume == "none" else Path(resume))
    if resume_path is not None:
        tensors, meta = load_checkpoint(resume_path)
        if meta.get("kind") != kind:
            raise InterpolationError(f"checkpoint is a {meta.get('kind')!r} run, not {kind!r}", path=resume_path)
        trainable.load_state_dict(state_of(tensors, "vae" if kind == "vae" else "unet"))
        restore_optimizer(optimizer, tensors, meta)
        start, latent_scale = int(meta["step"]), float(meta.get("latent_scale", 1.0))
    elif kind == "ldm":
        with torch.no_grad():
            first = _batch(dataset, 0, cfg.train.batch_size, world, rank)
            std = float(encode_slices(models["vae"], first["thin"].to(device)).float().std())
        latent_scale = 1.0 / max(std, 1e-6)
    if world > 1:
        trainable = torch.nn.parallel.DistributedDataParallel(
            trainable, device_ids=[device.index] if device.type == "cuda" else None
        )
        models["vae" if kind == "vae" else "unet"] = trainable
    scheduler = make_scheduler(cfg.model.diffusion, "ddpm")
    use_amp = cfg.train.amp and device.type == "cuda"
    result = TrainResult()

    def meta() -> dict[str, Any]:
        return {
            "kind": kind,
            "config": cfg.to_dict(),
            "model": {
                "vae": cfg.model.vae.to_dict(),
                "unet": cfg.model.unet.to_dict(),
                "diffusion": cfg.model.diffusion.to_dict(),
            },
            "latent_scale": latent_scale,
            "factor": cfg.data.factor,
            "depth": cfg.data.depth,
            "value_range": "HU [-1024, 3071] -> [0, 1] -> 2x-1 in [-1, 1] -> VAE z_mu x latent_scale",
        }

    steps = range(start, cfg.train.steps)
    trainable.train()
    for step in progress_iter(steps, f"training {kind}", total=len(steps), enabled=progress if rank == 0 else False):
        batch = _batch(dataset, step, cfg.train.batch_size, world, rank)
        generator = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + step * world + rank)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            if kind == "vae":
                slices = _slices_of(batch["thin"], cfg.data.slices_per_item).to(device)
                loss, _ = vae_loss(trainable, slices, cfg.model.vae.kl_weight)
            else:
                with torch.no_grad():
                    latents = encode_slices(models["vae"], batch["thin"].to(device)) * latent_scale
                    cond = encode_slices(models["vae"], batch["cond"].to(device)) * latent_scale
                loss = diffusion_loss(trainable, latents, cond, scheduler, cfg.model.diffusion.min_snr_gamma, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.losses[step] = float(loss.detach())
        done = step + 1
        if rank == 0 and cfg.train.val_every > 0 and done % cfg.train.val_every == 0:
            val_batch = {k: v[None] for k, v in val_set[0].items()}
            result.validations.append(_validate(kind, models, val_batch, cfg, done, latent_scale, device, out_dir))
        if rank == 0 and (done % max(1, cfg.train.save_every) == 0 or done == cfg.train.steps):
            models_to_save = {"vae": models["vae"]} if kind == "vae" else {"vae": models["vae"], "unet": trainable}
            result.checkpoint = save_checkpoint(out_dir, done, models_to_save, optimizer, meta())
    if world > 1:
        torch.distributed.barrier()
    return result
