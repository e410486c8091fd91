"""Resumable checkpoints: weights + optimizer state in safetensors, config and progress in JSON.

``<out_dir>/step_<N>.safetensors`` holds ``<model>.<param>`` tensors (e.g. ``vae.encoder...``,
``unet...``) and ``optim.<i>.<key>`` optimizer state; ``step_<N>.json`` holds ``kind``, ``step``, the
full training config, the model configs, ``latent_scale`` and the optimizer's param groups.
``latest.json`` is a copy of the newest JSON. Both files are written atomically (temp + rename).

Example:
    >>> import tempfile, torch
    >>> net = torch.nn.Linear(2, 1)
    >>> path = save_checkpoint(tempfile.mkdtemp(), 3, {"net": net}, None, {"kind": "demo"})
    >>> tensors, meta = load_checkpoint(path)
    >>> meta["step"], sorted(tensors)
    (3, ['net.bias', 'net.weight'])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ctlens.io.files import atomic_output
from ctlens.models.ldm.checkpoint_file import read_checkpoint

__all__ = ["latest_checkpoint", "load_checkpoint", "restore_optimizer", "save_checkpoint", "state_of"]


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    models: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
) -> Path:
    """Write ``step_<step>.safetensors`` + ``.json`` and ``latest.json``; return the JSON path."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        for key, value in _unwrap(model).state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous().clone()
    groups: list[dict[str, Any]] = []
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for key, value in values.items():
                tensor = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"optim.{index}.{key}"] = tensor.detach().cpu().contiguous().clone()
        groups = state["param_groups"]
    stem = f"step_{step:07d}"
    weights = out / f"{stem}.safetensors"
    with atomic_output(weights) as tmp:
        save_file(tensors, str(tmp))
    record = {**meta, "step": int(step), "weights": weights.name, "optimizer_param_groups": groups, "format": 1}
    text = json.dumps(record, indent=2, default=str)
    for target in (out / f"{stem}.json", out / "latest.json"):
        with atomic_output(target) as tmp:
            Path(tmp).write_text(text)
    return out / f"{stem}.json"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """``<out_dir>/latest.json`` if it exists."""
    path = Path(out_dir) / "latest.json"
    return path if path.is_file() else None


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint (its JSON, or a folder with ``latest.json``): ``(tensors, meta)``."""
    return read_checkpoint(path)


def state_of(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The ``name.*`` tensors with the prefix removed (a model's state dict).

    Example:
        >>> state_of({"a.w": 1, "b.w": 2}, "a")
        {'w': 1}
    """
    prefix = f"{name}."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load optimizer state saved by :func:`save_checkpoint`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state_of(tensors, "optim").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer_param_groups"]})
