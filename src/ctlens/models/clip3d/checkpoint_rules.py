"""Checks on a checkpoint's ``config.json`` before the model it describes is built (issue #21).

A checkpoint folder is input like any file: its config decides how much memory :func:`build_model` allocates,
so a crafted ``hidden_size`` of a million asked for 4 TB and a fusion ``depth`` of a million hung for minutes.
:func:`check_config` refuses, with a :class:`~ctlens.core.errors.CorruptFileError` naming ``config.json``:

* architecture sizes that are not positive integers up to :data:`MAX_SIZE` (``slice_chunk`` may be 0), a patch
  larger than the image, a width not divisible by its number of heads, an input shape or HU window that is not
  three positive sizes / two finite increasing numbers;
* a model whose estimated float32 size exceeds ``4 x`` the weights file plus :data:`SLACK_BYTES` (lean checkpoints
  leave out the ~90 MB MiniLM text tower; nothing legitimate is far larger than its weights).

Example:
    >>> from ctlens.models.clip3d.config import load_config
    >>> cfg = load_config("ctclip-tiny")
    >>> check_config(cfg, "config.json", weights_bytes=4_000_000)
    >>> cfg.fusion.depth = 60_000  # within MAX_SIZE, but 60 000 transformer blocks
    >>> check_config(cfg, "config.json", weights_bytes=4_000_000)
    Traceback (most recent call last):
    ...
    ctlens.core.errors.CorruptFileError: config.json: the config describes a model of about ...
"""

from __future__ import annotations

import math
import os
from typing import Any

from ctlens.core.errors import CorruptFileError
from ctlens.models.clip3d.config import CLIP3DConfig

__all__ = ["MAX_SIZE", "SLACK_BYTES", "check_config", "estimated_parameters"]

MAX_SIZE = 1 << 16
"""Largest value of any architecture size (hidden widths, layers, heads, image and patch sizes, lengths)."""
SLACK_BYTES = 1 << 30
"""Model bytes allowed beyond 4x the weights file (towers rebuilt from their package, buffers)."""

_VISION = ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio")
_FUSION = ("dim", "depth", "heads")
_TEXT_OVERRIDES = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
)


def _size(value: Any, name: str, path: str | os.PathLike[str], low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SIZE:
        raise CorruptFileError(
            f"config {name} is {str(value)[:40]!r}, not an integer in [{low}, {MAX_SIZE}]", path=path
        )
    return value


def estimated_parameters(cfg: CLIP3DConfig) -> int:
    """Rough parameter count of the model ``cfg`` builds (transformer blocks, embeddings, projections).

    Example:
        >>> from ctlens.models.clip3d.config import load_config
        >>> 10**5 < estimated_parameters(load_config("ctclip-tiny")) < 10**7
        True
    """
    v, f, t = cfg.vision, cfg.fusion, cfg.text.overrides
    h = v.hidden_size
    vision = v.num_hidden_layers * (4 + 2 * v.mlp_ratio) * h * h + 3 * v.patch_size**2 * h
    vision += ((v.image_size // max(v.patch_size, 1)) ** 2 + 1) * h
    fusion = f.depth * 12 * f.dim * f.dim + h * f.dim
    th = int(t.get("hidden_size", 384))
    text = int(t.get("vocab_size", 30522)) * th + max(512, int(t.get("max_position_embeddings", 512))) * th
    text += int(t.get("num_hidden_layers", 6)) * (4 * th * th + 2 * th * int(t.get("intermediate_size", 4 * th)))
    return int(vision + fusion + text + (h + f.dim + th) * cfg.embed_dim)


def check_config(cfg: CLIP3DConfig, path: str | os.PathLike[str], *, weights_bytes: int) -> None:
    """Raise :class:`CorruptFileError` (naming ``path``) for a config that cannot describe a sane model."""
    v, f = cfg.vision, cfg.fusion
    for name in _VISION:
        _size(getattr(v, name), f"vision.{name}", path)
    _size(v.slice_chunk, "vision.slice_chunk", path, low=0)
    for name in _FUSION:
        _size(getattr(f, name), f"fusion.{name}", path)
    _size(cfg.embed_dim, "embed_dim", path)
    _size(cfg.text.max_length, "text.max_length", path)
    if not isinstance(cfg.text.overrides, dict):
        raise CorruptFileError("config text.overrides is not a mapping", path=path)
    for name in _TEXT_OVERRIDES:
        if name in cfg.text.overrides:
            _size(cfg.text.overrides[name], f"text.overrides.{name}", path)
    if v.patch_size > v.image_size:
        raise CorruptFileError(f"config vision.patch_size {v.patch_size} exceeds image_size {v.image_size}", path=path)
    if v.hidden_size % v.num_attention_heads or f.dim % f.heads:
        raise CorruptFileError("config widths are not divisible by their numbers of attention heads", path=path)
    shape, hu = cfg.input.shape, cfg.input.hu_range
    if not (isinstance(shape, tuple | list) and len(shape) == 3):
        raise CorruptFileError(f"config input.shape {str(shape)[:40]} is not three sizes", path=path)
    for n in shape:
        _size(n, "input.shape", path)
    if not (isinstance(hu, tuple | list) and len(hu) == 2 and all(isinstance(x, int | float) for x in hu)) or not (
        math.isfinite(hu[0]) and math.isfinite(hu[1]) and hu[0] < hu[1]
    ):
        raise CorruptFileError(f"config input.hu_range {str(hu)[:40]} is not two increasing numbers", path=path)
    model_bytes = 4 * estimated_parameters(cfg)
    if model_bytes > 4 * weights_bytes + SLACK_BYTES:
        raise CorruptFileError(
            f"the config describes a model of about {model_bytes / 1e9:.1f} GB, far more than its "
            f"{weights_bytes}-byte weights file",
            path=path,
        )
