"""Model weights as safetensors next to the JSON config that builds the model (no pickle).

A checkpoint folder holds ``model.safetensors`` and ``config.json`` (a
:class:`~ctlens.models.clip3d.config.CLIP3DConfig`). Training adds optimizer state beside them
(:mod:`ctlens.training.clip_checkpoint`). Weights are written to a temporary file, then renamed.

Example:
    >>> import tempfile
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> folder = tempfile.mkdtemp()
    >>> model = build_model(load_config("ctclip-tiny"))
    >>> _ = save_model_weights(model, folder)
    >>> again = load_model_checkpoint(folder)
    >>> bool((again.logit_scale == model.logit_scale).all()), again.cfg.name
    (True, 'ctclip-tiny')
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.models.clip3d.config import CLIP3DConfig
from ctlens.models.clip3d.model import CTCLIP, build_model

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_model_checkpoint", "save_model_weights"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_model_weights(model: torch.nn.Module, folder: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (created); returns the folder."""
    from safetensors.torch import save_model

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    core = getattr(model, "module", model)  # unwrap DDP
    tmp = out / (WEIGHTS_FILE + ".tmp")
    save_model(core, str(tmp))
    os.replace(tmp, out / WEIGHTS_FILE)
    _atomic_write_text(out / CONFIG_FILE, core.cfg.to_json())
    return out


def load_model_checkpoint(
    folder: str | os.PathLike[str], device: str | torch.device = "cpu", *, strict: bool = True
) -> CTCLIP:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (eval mode)."""
    from safetensors.torch import load_model

    path = Path(folder)
    if path.is_file():
        path = path.parent
    weights, config = path / WEIGHTS_FILE, path / CONFIG_FILE
    for needed in (weights, config):
        if not needed.is_file():
            raise InputNotFoundError(
                f"not a CLIP3D checkpoint (no {needed.name})",
                path=path,
                hint="pass a folder written by ctlens clip train",
            )
    try:
        cfg = CLIP3DConfig.from_json(config.read_text())
    except (ValueError, TypeError) as exc:
        raise CorruptFileError(f"invalid checkpoint config ({exc})", path=config) from exc
    # pretrained towers are overwritten by the checkpoint: build them without looking for weights
    cfg.vision.pretrained = None
    model = build_model(cfg)
    try:
        missing, unexpected = load_model(model, str(weights), strict=strict)
    except (RuntimeError, OSError) as exc:
        raise CorruptFileError(f"weights do not fit the config ({str(exc)[:200]})", path=weights) from exc
    return model.to(device).eval()
