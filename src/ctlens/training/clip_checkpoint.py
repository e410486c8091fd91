"""Resumable training checkpoints without pickle: safetensors for tensors, JSON for everything else.

A checkpoint folder holds ``model.safetensors`` + ``config.json`` (see
:mod:`ctlens.models.clip3d.checkpoint`, enough for inference; a frozen bundled MiniLM text tower is left
out and rebuilt from its package), ``optimizer.safetensors`` (every tensor of
the optimizer state, keys ``state.<param index>.<name>``) and ``trainer_state.json`` (step, epoch,
scheduler state, the optimizer's param groups and non-tensor state, the training config, RNG seeds).
Each file is written to a temporary name and renamed, ``trainer_state.json`` last, so a folder with
that file is complete.

Example:
    >>> import tempfile, torch
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> model = build_model(load_config("ctclip-tiny")); opt = torch.optim.AdamW(model.parameters())
    >>> folder = save_training_checkpoint(tempfile.mkdtemp(), model, opt, None, {"step": 3})
    >>> load_training_state(folder, model, opt, None)["step"]
    3
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.models.clip3d.checkpoint import WEIGHTS_FILE, load_model_checkpoint, load_model_weights, save_model_weights

__all__ = ["TRAINER_STATE", "latest_checkpoint", "load_training_state", "save_training_checkpoint"]

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_checkpoint(
    folder: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    state: dict[str, Any],
) -> Path:
    """Write a complete, resumable checkpoint into ``folder`` (module doc); returns the folder."""
    from safetensors.torch import save_file

    out = save_model_weights(model, folder)
    record = dict(state)
    if optimizer is not None:
        tensors, meta = _split_optimizer_state(optimizer.state_dict())
        tmp = out / (OPTIMIZER_FILE + ".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, out / OPTIMIZER_FILE)
        record["optimizer"] = meta
    if scheduler is not None:
        record["scheduler"] = scheduler.state_dict()
    tmp_json = out / (TRAINER_STATE + ".tmp")
    tmp_json.write_text(json.dumps(record, indent=1, default=_json_default))
    os.replace(tmp_json, out / TRAINER_STATE)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_training_state(
    folder: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
) -> dict[str, Any]:
    """Load weights, optimizer and scheduler state from ``folder`` in place; returns the trainer state dict."""
    from safetensors.torch import load_file

    path = Path(folder)
    state_file = path / TRAINER_STATE
    if not state_file.is_file():
        raise InputNotFoundError("not a complete training checkpoint (no trainer_state.json)", path=path)
    try:
        record = json.loads(state_file.read_text())
        load_model_weights(model, path / WEIGHTS_FILE)  # lean checkpoints: frozen towers stay as built
        if optimizer is not None and "optimizer" in record:
            tensors = load_file(str(path / OPTIMIZER_FILE))
            optimizer.load_state_dict(_join_optimizer_state(tensors, record["optimizer"]))
        if scheduler is not None and "scheduler" in record:
            scheduler.load_state_dict(record["scheduler"])
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CorruptFileError(f"cannot resume from this checkpoint ({str(exc)[:200]})", path=path) from exc
    return record


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete ``step-*`` checkpoint folder under ``run_dir`` (or None)."""
    folders = [p for p in Path(run_dir).glob("step-*") if (p / TRAINER_STATE).is_file()]
    return max(folders, key=lambda p: int(p.name.split("-")[1])) if folders else None


load_model_for_inference = load_model_checkpoint
