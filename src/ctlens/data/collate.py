"""Batch samples with different token counts.

* :func:`collate_tokens` (default): **packed** -- the tokens of all samples are concatenated
  (``img [sum N, 1024]``, ``coords``, ``filtered``) with ``cu_seqlens`` (int32 ``[B + 1]`` offsets:
  sample ``i`` is ``img[cu_seqlens[i]:cu_seqlens[i + 1]]``), the layout of variable-length attention
  kernels (FlashAttention ``varlen``) and NeuroVFM's packed batches; no padding is wasted.
* :func:`collate_padded`: ``img [B, N_max, 1024]`` zero-padded, ``attention_mask [B, N_max]`` (True =
  real token), ``filtered`` padded with 1 (padding counts as background).

Both stack ``size`` and ``label`` and keep the strings (``path``, ``study``, ``mode``, ``window``) as lists.
Samples made with ``tokenize=False`` (volumes ``[1, D, H, W]``) are stacked when their shapes agree.

Example:
    >>> import torch
    >>> def sample(n):
    ...     return {"img": torch.zeros(n, 4), "coords": torch.zeros(n, 3, dtype=torch.long),
    ...             "filtered": torch.zeros(n, dtype=torch.bool), "size": torch.tensor([4, 16, 16]),
    ...             "label": torch.tensor(1.0), "path": "p", "study": "s", "mode": "ct", "window": "brain"}
    >>> b = collate_tokens([sample(2), sample(3)])
    >>> b["img"].shape, b["cu_seqlens"].tolist()
    (torch.Size([5, 4]), [0, 2, 5])
    >>> collate_padded([sample(2), sample(3)])["attention_mask"].sum(1).tolist()
    [2, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["collate_padded", "collate_tokens"]

_STRINGS = ("path", "study", "mode", "window")


def _common(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: [s[k] for s in batch] for k in _STRINGS if k in batch[0]}
    out["size"] = torch.stack([torch.as_tensor(s["size"]) for s in batch])
    out["label"] = torch.stack([torch.as_tensor(s["label"]) for s in batch])
    return out


def collate_tokens(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Packed batch: tokens concatenated, ``cu_seqlens`` offsets (module doc)."""
    out = _common(batch)
    if batch[0]["img"].ndim != 2:
        out["img"] = torch.stack([s["img"] for s in batch])
        out["coords"] = [s["coords"] for s in batch]
        out["filtered"] = [s["filtered"] for s in batch]
        return out
    lengths = torch.tensor([s["img"].shape[0] for s in batch], dtype=torch.int32)
    out["img"] = torch.cat([s["img"] for s in batch])
    out["coords"] = torch.cat([s["coords"] for s in batch])
    out["filtered"] = torch.cat([s["filtered"] for s in batch])
    out["seq_lens"] = lengths
    out["cu_seqlens"] = torch.nn.functional.pad(torch.cumsum(lengths, 0, dtype=torch.int32), (1, 0))
    return out


def collate_padded(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Padded batch with ``attention_mask`` (module doc)."""
    out = _common(batch)
    n_max = max(s["img"].shape[0] for s in batch)
    b = len(batch)
    first = batch[0]
    img = first["img"].new_zeros((b, n_max, *first["img"].shape[1:]))
    coords = first["coords"].new_zeros((b, n_max, 3))
    filtered = torch.ones((b, n_max), dtype=first["filtered"].dtype)
    mask = torch.zeros((b, n_max), dtype=torch.bool)
    for i, s in enumerate(batch):
        n = s["img"].shape[0]
        img[i, :n], coords[i, :n], filtered[i, :n], mask[i, :n] = s["img"], s["coords"], s["filtered"], True
    out.update(img=img, coords=coords, filtered=filtered, attention_mask=mask)
    return out
