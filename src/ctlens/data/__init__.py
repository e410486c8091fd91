"""PyTorch datasets, collate functions and samplers (needs the `ml` extra: torch).

The names below are imported on first use, so ``import ctlens.data.<module>`` of a torch-free module
does not pull in torch.

Example:
    >>> from ctlens.data import StudyAwareBatchSampler
    >>> [sorted(b) for b in StudyAwareBatchSampler(["a", "b", "b"], batch_size=2, shuffle=False)]
    [[0], [1, 2]]
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ImageDataset": "ctlens.data.image_dataset",
    "StudyAwareBatchSampler": "ctlens.data.sampler",
    "StudyLabels": "ctlens.data.labels",
    "collate_padded": "ctlens.data.collate",
    "collate_tokens": "ctlens.data.collate",
    "load_study_labels": "ctlens.data.labels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        if _EXPORTS[name] != "ctlens.data.labels":
            from ctlens.core.optional import require

            require("torch", extra="ml")
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ctlens.data' has no attribute {name!r}")
