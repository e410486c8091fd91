"""Read a slice-interpolation checkpoint: a JSON file naming its safetensors weights.

Example:
    >>> from ctlens.models.ldm.checkpoint_file import read_checkpoint
    >>> read_checkpoint("/no/such/run")
    Traceback (most recent call last):
    ...
    ctlens.core.errors.InterpolationError: /no/such/run: checkpoint not found (give the step_*.json or the run folder)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ctlens.core.errors import InterpolationError

__all__ = ["read_checkpoint"]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a checkpoint given by its JSON or by a run folder holding ``latest.json``."""
    from safetensors.torch import load_file

    file = Path(path)
    if file.is_dir():
        file = file / "latest.json"
    if not file.is_file():
        raise InterpolationError("checkpoint not found", path=file, hint="give the step_*.json or the run folder")
    try:
        meta = json.loads(file.read_text())
        tensors = load_file(str(file.parent / meta["weights"]))
    except (OSError, ValueError, KeyError) as exc:
        raise InterpolationError(f"unreadable checkpoint ({type(exc).__name__}: {exc})", path=file) from None
    return tensors, meta
