"""Contrastive training of the 3D CLIP: one process or DDP under ``torchrun``.

Per process: ``batch_size`` volumes per micro-batch, ``accumulate`` micro-batches per optimizer step
(note: with accumulation each micro-batch's contrastive loss sees only its own negatives). Under DDP the
features of all ranks are gathered with gradients into the loss (:func:`ctlens.models.clip3d.clip_loss`),
so N processes with batch ``b`` compute the loss of one global batch of ``N * b``.

* data order: one seeded permutation per epoch, cut into global batches, each rank taking its slice, so
  a resumed run (``resume``) continues with exactly the batches it would have seen;
* AdamW (no decay on biases / norms / temperature), cosine LR with linear warmup
  (:mod:`ctlens.training.clip.schedule`), gradient clipping;
* AMP on CUDA (bfloat16 where supported, else float16 with a gradient scaler), off on CPU unless asked;
* every ``validate_every`` steps (rank 0): validation loss, zero-shot mean AUROC when labels exist,
  retrieval recall@k; all logged to ``metrics.csv`` and ``metrics.jsonl`` in the run folder;
* checkpoints ``step-<n>/`` every ``save_every`` steps and at the end (safetensors + JSON,
  :mod:`ctlens.training.checkpoints`), the last two kept; the final model also in ``model/``;
* the model config records the trained body regions and modality (``body_regions`` / ``modality``, default
  chest CT; :func:`record_domain`), so zero-shot scoring can refuse scans outside them;
* a fresh run (not ``resume``) refuses a config whose named DINOv2 weights are missing unless
  ``allow_random_init`` (:func:`ctlens.models.clip3d.visual.require_backbone_weights`).

Example:
    >>> ClipTrainConfig(batch_size=8).global_batch(world_size=2)
    16
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctlens.core.errors import CTLensError, InputNotFoundError
from ctlens.core.progress import ProgressCallback, announce
from ctlens.models.clip3d import CTCLIP, build_model, clip_loss, load_config
from ctlens.training.checkpoints import (
    checkpoint_folders,
    latest_checkpoint,
    load_training_state,
    save_training_checkpoint,
)
from ctlens.training.clip.distributed import DistContext, init_distributed, reduce_mean
from ctlens.training.clip.protocol import SPLIT_FILE
from ctlens.training.clip.schedule import cosine_with_warmup, parameter_groups

__all__ = [
    "ClipTrainConfig",
    "TrainResult",
    "contrastive_loss",
    "epoch_batches",
    "record_domain",
    "sample_sentences",
    "train_clip",
]

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "step",
    "epoch",
    "lr",
    "train_loss",
    "logit_scale",
    "seconds",
    "val_loss",
    "val_mean_auroc",
    "val_image_to_text_R@1",
    "val_image_to_text_R@5",
    "val_text_to_image_R@1",
    "val_text_to_image_R@5",
)


@dataclass
class ClipTrainConfig:
    """Everything a run needs; saved as JSON in the run folder and in each checkpoint."""

    ct: str | None = None
    reports: str | None = None
    labels: str | None = None
    split: str | None = None  # JSON {"train": [...], "val": [...]} from `ctlens clip split`
    val_size: int = 500
    out_dir: str = "runs/clip"
    model: str = "ctclip-dinov2-small"  # config name or JSON path
    batch_size: int = 32
    epochs: int = 40
    max_steps: int = 0  # 0: epochs decide
    lr: float = 1e-4
    weight_decay: float = 0.1
    warmup_steps: int = 500
    min_lr_ratio: float = 0.0
    accumulate: int = 1
    clip_grad_norm: float = 1.0
    amp: str = "auto"  # auto | off | bf16 | fp16
    freeze_backbone: bool = False
    grad_checkpointing: bool | None = None  # None: as the model config says
    validate_every: int = 200
    save_every: int = 1000
    num_workers: int = 2
    resume: str | None = None  # a checkpoint folder, or "latest" (newest in out_dir)
    seed: int = 42
    threads: int = 0  # torch CPU threads (0: leave as is)
    log_every: int = 10
    progress: bool = True
    findings: Sequence[str] | None = None  # zero-shot findings for validation (default: the labels' columns)
    sentences: int = 0  # >0: each step pairs a volume with 1..sentences random sentences of its report
    body_regions: Sequence[str] | None = None  # trained body regions recorded in the checkpoint (None: the config's)
    modality: str | None = None  # trained modality recorded in the checkpoint (None: the config's, "CT")
    allow_random_init: bool = False  # train even when the config names DINOv2 weights that are not found
    extra: dict[str, Any] = field(default_factory=dict)

    def global_batch(self, world_size: int = 1) -> int:
        """Volumes per optimizer step over all processes."""
        return self.batch_size * self.accumulate * world_size


@dataclass
class TrainResult:
    """Where the run went and what it logged."""

    run_dir: Path
    steps: int
    checkpoint: Path | None
    history: list[dict[str, Any]]


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, ctx: DistContext = DistContext()) -> list[list[int]]:
    """This rank's index batches for ``epoch``: a seeded permutation cut into global batches (last partial dropped).

    Example:
        >>> epoch_batches(8, 2, 0, 0, DistContext(0, 0, 2)) != epoch_batches(8, 2, 0, 0, DistContext(1, 0, 2))
        True
    """
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen).tolist()
    step = batch_size * ctx.world_size
    batches = []
    for start in range(0, n - step + 1, step):
        chunk = order[start : start + step]
        batches.append(chunk[ctx.rank * batch_size : (ctx.rank + 1) * batch_size])
    return batches


def sample_sentences(text: str, max_sentences: int, rng: np.random.Generator) -> str:
    """1..``max_sentences`` random sentences of ``text``, in their order (sentence sampling, as CXR-CLIP does).

    Short texts and ``max_sentences <= 0`` come back unchanged.

    Example:
        >>> sample_sentences("No effusion. Heart enlarged. Bones normal.", 1, np.random.default_rng(0)).count(".")
        1
    """
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p.strip()]
    if max_sentences <= 0 or len(parts) <= 1:
        return text
    k = int(rng.integers(1, min(max_sentences, len(parts)) + 1))
    keep = sorted(rng.choice(len(parts), size=k, replace=False).tolist())
    return " ".join(parts[i] for i in keep)


def contrastive_loss(
    model: torch.nn.Module, volumes: torch.Tensor, texts: Sequence[str], autocast: Any = None
) -> torch.Tensor:
    """The CLIP loss of one (local) batch; ``model`` may be DDP-wrapped (features gathered over ranks)."""
    core = getattr(model, "module", model)
    if core.text.cfg.freeze:  # frozen text tower: pooled features cached per distinct report
        text_inputs = {"text_features": core.text.frozen_features(list(texts))}
    else:
        text_inputs = core.text.tokenize(list(texts), core.device)
    with autocast if autocast is not None else contextlib.nullcontext():
        image, text, scale = model(volumes.to(core.device, non_blocking=True), **text_inputs)
    return clip_loss(image.float(), text.float(), scale.float())


def _autocast(amp: str, device: torch.device) -> tuple[Any, torch.amp.GradScaler | None]:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None, None
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return torch.autocast(device_type=device.type, dtype=dtype), scaler


def _datasets(cfg: ClipTrainConfig) -> tuple[Any, Any]:
    from ctlens.data.ct_report import CTReportDataset, patient_split

    if not cfg.ct or not cfg.reports:
        raise InputNotFoundError("training needs --ct (HDF5 volumes) and --reports (CSV)")
    full = CTReportDataset(cfg.ct, cfg.reports, cfg.labels)
    if cfg.split:
        split = json.loads(Path(cfg.split).read_text())
        train_names, val_names = split["train"], split["val"]
    else:
        train_names, val_names = patient_split(full.names, cfg.val_size, cfg.seed, patients=full.patient_map)
    train = CTReportDataset(cfg.ct, cfg.reports, cfg.labels, names=train_names)
    val = CTReportDataset(cfg.ct, cfg.reports, cfg.labels, names=val_names) if val_names else None
    return train, val


def _build(cfg: ClipTrainConfig) -> CTCLIP:
    mcfg = load_config(cfg.model)
    if cfg.freeze_backbone:
        mcfg.vision.freeze = True
    if cfg.grad_checkpointing is not None:
        mcfg.vision.grad_checkpointing = cfg.grad_checkpointing
    if not cfg.resume:  # a resumed run loads its own weights
        from ctlens.models.clip3d.visual import require_backbone_weights

        log.info("visual backbone: %s", require_backbone_weights(mcfg.vision, cfg.allow_random_init))
    return build_model(mcfg)


def record_domain(model: CTCLIP, cfg: ClipTrainConfig) -> tuple[tuple[str, ...], str]:
    """Write the trained body regions and modality into the model config (saved with every checkpoint).

    ``cfg.body_regions`` / ``cfg.modality`` override the model config's (default: chest CT); zero-shot scoring
    refuses scans outside this domain (:mod:`ctlens.pipelines.zero_shot`).

    Example:
        >>> from ctlens.models.clip3d import build_model, load_config
        >>> record_domain(build_model(load_config("ctclip-tiny")), ClipTrainConfig(body_regions=["Head"]))
        (('head',), 'CT')
    """
    core = getattr(model, "module", model)
    if cfg.body_regions is not None:
        regions = (cfg.body_regions,) if isinstance(cfg.body_regions, str) else tuple(cfg.body_regions)
        core.cfg.input.body_regions = tuple(str(r).strip().lower() for r in regions)
    if cfg.modality is not None:
        core.cfg.input.modality = str(cfg.modality).strip().upper()
    return core.cfg.input.body_regions, core.cfg.input.modality


@torch.no_grad()
def validate(model: CTCLIP, dataset: Any, batch_size: int, findings: Sequence[str] | None) -> dict[str, float]:
    """Validation loss (mean over batches), zero-shot mean AUROC (when labels exist) and recall@k."""
    from ctlens.data.ct_report import collate_ct_report
    from ctlens.models.clip3d.prompts import finding_probabilities
    from ctlens.training.clip.metrics import auroc, recall_at_k

    was_training = model.training
    model.eval()
    images, texts, labels, losses = [], [], [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate_ct_report([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
        tokens = model.text.tokenize(batch["text"], model.device)
        img, txt, scale = model(batch["volume"].to(model.device), **tokens)
        if img.shape[0] > 1:
            losses.append(float(clip_loss(img.float(), txt.float(), scale.float())))
        images.append(img.float().cpu())
        texts.append(txt.float().cpu())
        if batch["labels"] is not None:
            labels.append(batch["labels"])
    out: dict[str, float] = {"val_loss": float(np.mean(losses)) if losses else float("nan")}
    img_all, txt_all = torch.cat(images), torch.cat(texts)
    out.update({f"val_{k}": v for k, v in recall_at_k(img_all.numpy(), txt_all.numpy(), ks=(1, 5)).items()})
    names = list(findings) if findings else list(getattr(dataset, "findings", []))
    if labels and names:
        lab = torch.cat(labels).numpy()
        cols = [dataset.findings.index(f) for f in names]
        probs = finding_probabilities(model, img_all.to(model.device), names).cpu().numpy()
        out["val_mean_auroc"] = float(np.nanmean(auroc(lab[:, cols], probs))) if lab.size else float("nan")
    model.train(was_training)
    return out


class _MetricsLog:
    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.csv_path, self.json_path = run_dir / "metrics.csv", run_dir / "metrics.jsonl"
        self.history: list[dict[str, Any]] = []
        if enabled and not self.csv_path.exists():
            with open(self.csv_path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS)).writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if not self.enabled:
            return
        with open(self.csv_path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), extrasaction="ignore").writerow(row)
        with open(self.json_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


@contextlib.contextmanager
def _progress(enabled: bool | ProgressCallback, total: int, start: int) -> Iterator[Any]:
    if callable(enabled):
        callback, done = enabled, start
        callback(done, total)

        def update(advance: int = 0, description: str = "") -> None:
            nonlocal done
            done += advance
            if description:
                announce(callback, f"CLIP training, {description}")
            callback(done, total)

        yield update
        return
    if not enabled:
        yield lambda **_: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cols = (TextColumn("[bold]CLIP train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*cols, TextColumn("{task.description}")) as bar:
        task = bar.add_task("", total=total, completed=start)
        yield lambda **kw: bar.update(task, **kw)


def _prune(run_dir: Path, keep: int = 2) -> None:
    for old in checkpoint_folders(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def train_clip(
    cfg: ClipTrainConfig,
    train_set: Any = None,
    val_set: Any = None,
    model: CTCLIP | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train (or resume) a 3D CLIP as the module doc describes; ``train_set``/``val_set`` override ``cfg.ct``.

    ``progress``: a callback told the steps done (``ctlens.core.progress``) instead of the bar ``cfg.progress`` draws.
    """
    from ctlens.data.ct_report import collate_ct_report

    ctx = init_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu")
    if train_set is None:
        train_set, val_set = _datasets(cfg)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = (model if model is not None else _build(cfg)).to(device)
    record_domain(model, cfg)
    model.train()
    run_dir = Path(cfg.out_dir)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str))
        train_names = getattr(train_set, "names", None)
        if train_names is not None:  # clip evaluate refuses test volumes listed here
            val_names = list(getattr(val_set, "names", None) or [])
            (run_dir / SPLIT_FILE).write_text(json.dumps({"train": list(train_names), "val": val_names}))
    batches_per_epoch = len(epoch_batches(len(train_set), cfg.batch_size, 0, cfg.seed, ctx)) // cfg.accumulate
    if batches_per_epoch == 0:
        raise CTLensError(
            f"{len(train_set)} training volumes do not fill one global batch of {cfg.global_batch(ctx.world_size)}",
            path=cfg.ct,
            hint="lower --batch-size or --val-size",
        )
    total = cfg.max_steps or cfg.epochs * batches_per_epoch
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = cosine_with_warmup(optimizer, min(cfg.warmup_steps, total // 2), total, cfg.min_lr_ratio)
    step = 0
    if cfg.resume:
        folder = latest_checkpoint(run_dir) if cfg.resume == "latest" else Path(cfg.resume)
        if folder is not None:
            step = int(load_training_state(folder, model, optimizer, scheduler)["step"])
            log.info("resumed from %s at step %d", folder, step)
    ddp_model: torch.nn.Module = model
    if ctx.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if device.type == "cuda" else None
        )
    autocast, scaler = _autocast(cfg.amp, device)
    metrics = _MetricsLog(run_dir, ctx.is_main)
    started = time.perf_counter()
    checkpoint: Path | None = None
    shown = (progress if progress is not None else cfg.progress) if ctx.is_main else False
    with _progress(shown, total, step) as advance:
        while step < total:
            epoch, in_epoch = divmod(step, batches_per_epoch)
            batches = epoch_batches(len(train_set), cfg.batch_size, epoch, cfg.seed, ctx)
            batches = batches[: batches_per_epoch * cfg.accumulate][in_epoch * cfg.accumulate :]
            loader = torch.utils.data.DataLoader(
                train_set,
                batch_sampler=batches,
                collate_fn=collate_ct_report,
                num_workers=cfg.num_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
            )
            losses: list[torch.Tensor] = []
            text_rng = np.random.default_rng([cfg.seed, epoch, in_epoch, ctx.rank])
            for micro, batch in enumerate(loader):
                if cfg.sentences:
                    batch["text"] = [sample_sentences(t, cfg.sentences, text_rng) for t in batch["text"]]
                last = (micro + 1) % cfg.accumulate == 0
                sync = contextlib.nullcontext() if last or not ctx.enabled else ddp_model.no_sync()
                with sync:
                    loss = contrastive_loss(ddp_model, batch["volume"], batch["text"], autocast)
                    scaled = loss / cfg.accumulate
                    (scaler.scale(scaled) if scaler else scaled).backward()
                losses.append(loss.detach())
                if not last:
                    continue
                if scaler:
                    scaler.unscale_(optimizer)
                if cfg.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                train_loss = float(reduce_mean(torch.stack(losses).mean()))
                losses = []
                row: dict[str, Any] = {
                    "step": step,
                    "epoch": epoch,
                    "lr": scheduler.get_last_lr()[0],
                    "train_loss": train_loss,
                    "logit_scale": float(model.scale().detach()),
                    "seconds": round(time.perf_counter() - started, 3),
                }
                advance(advance=1, description=f"loss {train_loss:.4f}")
                if val_set is not None and cfg.validate_every and (step % cfg.validate_every == 0 or step == total):
                    if ctx.is_main:
                        row.update(validate(model, val_set, cfg.batch_size, cfg.findings))
                    if ctx.enabled:
                        torch.distributed.barrier()
                if step % cfg.log_every == 0 or step == total or "val_loss" in row:
                    metrics.write(row)
                if step % cfg.save_every == 0 or step == total:
                    checkpoint = run_dir / f"step-{step}"
                    if ctx.is_main:
                        state = {"step": step, "epoch": epoch, "train_config": asdict(cfg)}
                        save_training_checkpoint(checkpoint, model, optimizer, scheduler, state)
                        _prune(run_dir)
                    if ctx.enabled:
                        torch.distributed.barrier()
                if step >= total:
                    break
    if ctx.is_main and checkpoint is not None:
        from ctlens.models.clip3d.checkpoint import save_model_weights

        save_model_weights(model, run_dir / "model")
    if not math.isfinite(metrics.history[-1]["train_loss"] if metrics.history else 0.0):
        log.warning("training loss is not finite: lower the learning rate or use --amp off")
    return TrainResult(run_dir, step, checkpoint, metrics.history)


def _spawn_entry(rank: int, world_size: int, port: int, cfg: ClipTrainConfig, backend: str, queue: Any) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    from ctlens.training.clip.distributed import shutdown_distributed

    try:
        init_distributed(backend)
        result = train_clip(cfg)
        if rank == 0:
            queue.put(result.history)
    finally:
        shutdown_distributed()


def train_clip_spawn(cfg: ClipTrainConfig, nprocs: int, backend: str = "gloo") -> list[dict[str, Any]]:
    """Run :func:`train_clip` in ``nprocs`` local processes (DDP on 127.0.0.1, no torchrun); rank 0's history.

    For CPU machines and tests; on GPUs prefer ``torchrun --nproc_per_node=N -m ctlens clip train ...``.
    """
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_spawn_entry, args=(nprocs, port, cfg, backend, queue), nprocs=nprocs, start_method="spawn")
    return queue.get()
