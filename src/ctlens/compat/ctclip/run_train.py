"""``python -m ctlens.compat.ctclip.run_train``: seed 003's training flags over
:func:`ctlens.training.clip.train.train_clip` (what ``ctlens clip train`` runs).

Seed flags: ``--ct_filepath`` (HDF5) ``--txt_filepath`` (reports CSV) ``--batch_size`` ``--epochs`` ``--use_ddp``
(run under ``torchrun``; ctlens reads the torchrun environment itself) ``--dinov2_model_name`` (``dinov2_vits14`` ...
-> ``facebook/dinov2-*`` from the local cache) ``--freeze_dinov2`` ``--context_length`` (text tokens)
``--do_validate`` ``--valid_interval`` ``--val_ct_filepath`` (must be ``--ct_filepath``: ctlens validates on
a patient-wise split of one file) ``--val_label_path`` (labels CSV for zero-shot validation). ctlens additions:
``--model`` (config name or JSON), ``--out_dir``, ``--max_steps``, ``--lr``, ``--num_workers``, ``--val_size``,
``--allow_random_init`` / ``--allow-random-init`` (training refuses random DINOv2 weights otherwise).

Example:
    >>> parser().parse_args(["--ct_filepath", "v.h5", "--freeze_dinov2", "False"]).freeze_dinov2
    False
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from ctlens.compat.ctclip.args import DINOV2_MODELS, run_script, str2bool

__all__ = ["main", "model_config", "parser"]

_CONFIG_OF = {"dinov2_vits14": "ctclip-dinov2-small", "dinov2_vitb14": "ctclip-dinov2-base"}


def parser() -> argparse.ArgumentParser:
    """The seed's flags (and ctlens's additions)."""
    p = argparse.ArgumentParser(prog="run_train.py", description="Train a 3D CLIP (ctlens)")
    p.add_argument("--ct_filepath", type=Path, default=Path("data/ct_volumes.h5"))
    p.add_argument("--txt_filepath", type=Path, default=Path("data/ct_rate/train_reports.csv"))
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--use_ddp", action="store_true", help="accepted; torchrun's environment decides")
    p.add_argument("--dinov2_model_name", choices=sorted(DINOV2_MODELS), default=None)
    p.add_argument("--freeze_dinov2", type=str2bool, nargs="?", const=True, default=False)
    p.add_argument("--context_length", type=int, default=77)
    p.add_argument("--do_validate", type=str2bool, nargs="?", const=True, default=False)
    p.add_argument("--valid_interval", type=int, default=200)
    p.add_argument("--val_ct_filepath", type=Path, default=None)
    p.add_argument("--val_label_path", type=Path, default=None)
    p.add_argument("--model", default=None, help="ctlens config name or JSON (default: from --dinov2_model_name)")
    p.add_argument("--out_dir", type=Path, default=Path("checkpoints"))
    p.add_argument("--max_steps", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup_steps", type=int, default=500)
    p.add_argument("--num_workers", type=int, default=2)
    p.add_argument("--val_size", type=int, default=500, help="validation volumes (whole patients)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--allow_random_init", "--allow-random-init", action="store_true")
    return p


def model_config(a: argparse.Namespace) -> Path | str:
    """The model config for these flags: a named config, or a JSON written to ``out_dir`` when flags change it."""
    from ctlens.models.clip3d import load_config

    name = a.dinov2_model_name or ("dinov2_vitb14" if a.model is None else None)
    base = a.model or _CONFIG_OF.get(name or "", "ctclip-dinov2-base")
    cfg = load_config(base)
    changed = False
    if name is not None and cfg.vision.pretrained != DINOV2_MODELS[name]:
        cfg.vision.pretrained, changed = DINOV2_MODELS[name], True
    if a.context_length != 77 and cfg.text.max_length != a.context_length:
        cfg.text.max_length, changed = a.context_length, True
    if not changed:
        return base
    a.out_dir.mkdir(parents=True, exist_ok=True)
    path = a.out_dir / "model_config.json"
    path.write_text(cfg.to_json())
    return path


def _main(argv: Sequence[str] | None) -> int:
    from ctlens.core.errors import InputNotFoundError
    from ctlens.models.clip3d import load_config
    from ctlens.models.clip3d.visual import require_backbone_weights
    from ctlens.training.clip.train import ClipTrainConfig, train_clip

    a = parser().parse_args(argv)
    if a.val_ct_filepath is not None and Path(a.val_ct_filepath).resolve() != Path(a.ct_filepath).resolve():
        raise InputNotFoundError(
            "ctlens validates on a patient-wise split of --ct_filepath, not on a second HDF5 file",
            path=a.val_ct_filepath,
            hint="export training and validation volumes into one HDF5 file, or leave --val_ct_filepath out",
        )
    if a.use_ddp and "WORLD_SIZE" not in os.environ:
        print("--use_ddp: not started by torchrun, training in one process")
    model = model_config(a)
    print(f"visual backbone: {require_backbone_weights(load_config(model).vision, a.allow_random_init)}")
    cfg = ClipTrainConfig(
        ct=str(a.ct_filepath),
        reports=str(a.txt_filepath),
        labels=str(a.val_label_path) if a.val_label_path else None,
        val_size=a.val_size,
        model=str(model),
        out_dir=str(a.out_dir),
        batch_size=a.batch_size,
        epochs=a.epochs,
        max_steps=a.max_steps,
        lr=a.lr,
        warmup_steps=a.warmup_steps,
        freeze_backbone=a.freeze_dinov2,
        allow_random_init=a.allow_random_init,
        validate_every=a.valid_interval if a.do_validate else 0,
        num_workers=a.num_workers,
        seed=a.seed,
        progress=False,
    )
    result = train_clip(cfg)
    print(f"trained {result.steps} steps; model in {result.run_dir / 'model'}; log {result.run_dir / 'metrics.csv'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; 0 when training finished."""
    return run_script(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
