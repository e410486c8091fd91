"""Resumable training checkpoints, both layouts, without pickle: safetensors for tensors, JSON for the rest.

**CLIP run folders** (:func:`save_training_checkpoint`, :func:`load_training_state`): a folder ``step-<N>/``
holds ``model.safetensors`` + ``config.json`` (see :mod:`ctlens.models.clip3d.checkpoint`, enough for
inference; a frozen bundled MiniLM text tower is left out and rebuilt from its package),
``optimizer.safetensors`` (every tensor of the optimizer state, keys ``state.<param index>.<name>``) and
``trainer_state.json`` (step, epoch, scheduler state, the optimizer's param groups and non-tensor state, the
training config, RNG seeds), written last: a folder with that file is complete.

**Interpolation (VAE / LDM) step files** (:func:`save_checkpoint`, :func:`load_checkpoint`):
``<out_dir>/step_<N>.safetensors`` holds ``<model>.<param>`` tensors (e.g. ``vae.encoder...``, ``unet...``)
and ``optim.<i>.<key>`` optimizer state; ``step_<N>.json`` holds ``kind``, ``step``, the full training
config, the model configs, ``latent_scale`` and the optimizer's param groups; ``latest.json`` is a copy of
the newest JSON.

Shared by both: the optimizer state as flat tensors and back (:func:`optimizer_tensors`,
:func:`optimizer_state`), every file written with :func:`ctlens.io.files.atomic_output`, and
:func:`latest_checkpoint`, which finds the newest complete checkpoint of either layout.

Example:
    >>> import tempfile, torch
    >>> net = torch.nn.Linear(2, 1)
    >>> path = save_checkpoint(tempfile.mkdtemp(), 3, {"net": net}, None, {"kind": "demo"})
    >>> tensors, meta = load_checkpoint(path)
    >>> meta["step"], sorted(tensors), latest_checkpoint(path.parent).name
    (3, ['net.bias', 'net.weight'], 'latest.json')
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
from ctlens.io.files import atomic_output
from ctlens.models.clip3d.checkpoint import WEIGHTS_FILE, load_model_weights, save_model_weights
from ctlens.models.ldm.checkpoint_file import read_checkpoint

__all__ = [
    "LATEST_FILE",
    "OPTIMIZER_FILE",
    "TRAINER_STATE",
    "checkpoint_folders",
    "latest_checkpoint",
    "load_checkpoint",
    "load_training_state",
    "optimizer_state",
    "optimizer_tensors",
    "restore_optimizer",
    "save_checkpoint",
    "save_training_checkpoint",
    "state_of",
]

TRAINER_STATE = "trainer_state.json"
"""CLIP layout: the file written last into a ``step-<N>/`` folder (its presence means the folder is complete)."""
OPTIMIZER_FILE = "optimizer.safetensors"
"""CLIP layout: the optimizer's tensors."""
LATEST_FILE = "latest.json"
"""Interpolation layout: a copy of the newest ``step_<N>.json``."""


# --------------------------------------------------------------------------------------------------------------
# shared


def optimizer_tensors(
    state: dict[str, Any], prefix: str, *, scalars_as_tensors: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """``(tensors, scalars)`` of an optimizer ``state_dict()``: tensors keyed ``<prefix>.<param index>.<name>``.

    Non-tensor values go to ``scalars`` (``{param index: {name: value}}``), or become tensors themselves with
    ``scalars_as_tensors``. The param groups are not included (JSON holds them).

    Example:
        >>> t, s = optimizer_tensors({"state": {0: {"step": 2, "m": torch.zeros(1)}}, "param_groups": []}, "state")
        >>> sorted(t), s
        (['state.0.m'], {'0': {'step': 2}})
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) or scalars_as_tensors:
                tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                tensors[f"{prefix}.{idx}.{name}"] = tensor.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, scalars


def optimizer_state(
    tensors: dict[str, torch.Tensor],
    prefix: str,
    param_groups: list[dict[str, Any]],
    scalars: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The optimizer ``state_dict`` back from :func:`optimizer_tensors`' output and the saved param groups.

    Example:
        >>> optimizer_state({"state.0.m": 1, "net.w": 2}, "state", [], {"0": {"step": 2}})
        {'state': {0: {'m': 1, 'step': 2}}, 'param_groups': []}
    """
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}."
    for key, value in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in (scalars or {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": param_groups}


def _write_json(path: Path, record: dict[str, Any], **dump: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, **dump))


def checkpoint_folders(run_dir: str | os.PathLike[str], *, complete: bool = False) -> list[Path]:
    """The ``step-<N>`` folders (CLIP layout) under ``run_dir``, oldest step first; ``complete``: only finished ones.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp()); (run / "step-10").mkdir(); (run / "step-9").mkdir()
        >>> [p.name for p in checkpoint_folders(run)], checkpoint_folders(run, complete=True)
        (['step-9', 'step-10'], [])
    """
    folders = [p for p in Path(run_dir).glob("step-*") if not complete or (p / TRAINER_STATE).is_file()]
    return sorted(folders, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint under ``run_dir``, of either layout, or None.

    Interpolation layout: ``<run_dir>/latest.json``; CLIP layout: the ``step-<N>`` folder with the highest
    ``N`` that holds ``trainer_state.json``.

    Example:
        >>> import tempfile
        >>> latest_checkpoint(tempfile.mkdtemp()) is None
        True
    """
    latest = Path(run_dir) / LATEST_FILE
    if latest.is_file():
        return latest
    folders = checkpoint_folders(run_dir, complete=True)
    return folders[-1] if folders else None


# --------------------------------------------------------------------------------------------------------------
# CLIP layout: step-<N>/ folders


def save_training_checkpoint(
    folder: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    state: dict[str, Any],
) -> Path:
    """Write a complete, resumable CLIP checkpoint into ``folder`` (module doc); returns the folder."""
    from safetensors.torch import save_file

    out = save_model_weights(model, folder)
    record = dict(state)
    if optimizer is not None:
        full = optimizer.state_dict()
        tensors, scalars = optimizer_tensors(full, "state")
        with atomic_output(out / OPTIMIZER_FILE) as tmp:
            save_file(tensors, str(tmp))
        record["optimizer"] = {"param_groups": full["param_groups"], "scalars": scalars}
    if scheduler is not None:
        record["scheduler"] = scheduler.state_dict()
    _write_json(out / TRAINER_STATE, record, indent=1, default=_json_default)
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
            saved = record["optimizer"]
            tensors = load_file(str(path / OPTIMIZER_FILE))
            optimizer.load_state_dict(
                optimizer_state(tensors, "state", saved["param_groups"], saved.get("scalars", {}))
            )
        if scheduler is not None and "scheduler" in record:
            scheduler.load_state_dict(record["scheduler"])
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CorruptFileError(f"cannot resume from this checkpoint ({str(exc)[:200]})", path=path) from exc
    return record


# --------------------------------------------------------------------------------------------------------------
# interpolation layout: step_<N>.safetensors + step_<N>.json + latest.json


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
        tensors.update(optimizer_tensors(state, "optim", scalars_as_tensors=True)[0])
        groups = state["param_groups"]
    stem = f"step_{step:07d}"
    weights = out / f"{stem}.safetensors"
    with atomic_output(weights) as tmp:
        save_file(tensors, str(tmp))
    record = {**meta, "step": int(step), "weights": weights.name, "optimizer_param_groups": groups, "format": 1}
    for target in (out / f"{stem}.json", out / LATEST_FILE):
        _write_json(target, record, indent=2, default=str)
    return out / f"{stem}.json"


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read an interpolation checkpoint (its JSON, or a folder with ``latest.json``): ``(tensors, meta)``."""
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
    optimizer.load_state_dict(optimizer_state(tensors, "optim", meta["optimizer_param_groups"]))
