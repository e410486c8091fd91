"""Embed CT volumes and texts with a 3D CLIP: the volume is prepared exactly like the HDF5 training export.

Volume preparation (:func:`prepare_volume`) reuses :func:`ctlens.preprocess.clip_input.to_clip_array`: RAS
orientation (slice axis bottom to up), HU clip to the model's ``input.hu_range``, aspect-preserving resize
and centre padding to ``input.shape``, uint8. A ready ``[D, H, W]`` uint8 array is used as it is.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> model = build_model(load_config("ctclip-tiny"))
    >>> ct = np.full((20, 40, 40), -1000, np.int16); ct[:, 10:30, 10:30] = 40
    >>> embed_volume(Volume(ct, spacing=(2.0, 1.0, 1.0)), model).shape, embed_text(["No effusion."], model).shape
    ((64,), (1, 64))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctlens.core.volume import Volume
from ctlens.io.files import file_versions

__all__ = ["checkpoint_version", "embed_text", "embed_volume", "embed_volumes", "load_clip", "prepare_volume"]


def prepare_volume(volume: Volume | np.ndarray, model: Any) -> np.ndarray:
    """uint8 ``[D, H, W]`` on the model's input grid (module doc); arrays of that shape pass unchanged."""
    from ctlens.preprocess.clip_input import to_clip_array

    cfg = model.cfg.input
    if isinstance(volume, Volume):
        arr, _ = to_clip_array(volume, target_shape=cfg.shape, slice_order="b2u", hu_clip=cfg.hu_range)
        return arr
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise ValueError(f"expected a Volume or a [D, H, W] array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError("a bare array must already be prepared (uint8 [D, H, W]); pass a Volume to prepare it")
    return arr


@lru_cache(maxsize=2)
def _cached(path: str, device: str, version: tuple[tuple[int, int], ...] | None) -> Any:
    """``version`` only keys the cache: a checkpoint rewritten in place has new (size, mtime) and is reloaded."""
    from ctlens.models.clip3d.checkpoint import load_model_checkpoint

    return load_model_checkpoint(path, device=device)


def checkpoint_version(checkpoint: str | os.PathLike[str]) -> tuple[tuple[int, int], ...] | None:
    """``(size, mtime_ns)`` of the checkpoint's ``model.safetensors`` and ``config.json``; None if one is missing.

    Example:
        >>> checkpoint_version("no-such-checkpoint") is None
        True
    """
    from ctlens.models.clip3d.checkpoint import CONFIG_FILE, WEIGHTS_FILE

    folder = Path(checkpoint)
    if folder.is_file():  # the weights file names its folder
        folder = folder.parent
    return file_versions(folder, (WEIGHTS_FILE, CONFIG_FILE))


def load_clip(checkpoint: str | os.PathLike[str], device: str | None = None) -> Any:
    """The model of a checkpoint folder (``model.safetensors`` + ``config.json``), cached.

    The cache is keyed by the folder and the files' size and modification time
    (:func:`checkpoint_version`), so a checkpoint overwritten in place (a new training run writing the same
    folder) is loaded again instead of the old model being served.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = Path(checkpoint).resolve()
    if path.is_file():  # the weights file names its folder
        path = path.parent
    return _cached(str(path), device, checkpoint_version(path))


@torch.no_grad()
def embed_volumes(volumes: Sequence[Volume | np.ndarray], model: Any, batch_size: int = 2) -> np.ndarray:
    """``[n, embed_dim]`` L2-normalised embeddings of several volumes."""
    model.eval()
    out = []
    for start in range(0, len(volumes), batch_size):
        arrs = [prepare_volume(v, model) for v in volumes[start : start + batch_size]]
        batch = torch.from_numpy(np.stack(arrs)).to(model.device)
        out.append(model.encode_volume(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.embed_dim), np.float32)


def embed_volume(volume: Volume | np.ndarray, model: Any) -> np.ndarray:
    """``[embed_dim]`` L2-normalised embedding of one volume."""
    return embed_volumes([volume], model)[0]


@torch.no_grad()
def embed_text(texts: Sequence[str], model: Any) -> np.ndarray:
    """``[n, embed_dim]`` L2-normalised embeddings of report texts or prompts."""
    model.eval()
    return model.encode_text(list(texts)).float().cpu().numpy()
