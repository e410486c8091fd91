"""PyTorch datasets, collate functions and samplers (needs the `ml` extra: torch).

The names below are imported on first use, so ``import ctlens.data.<module>`` of a torch-free module
does not pull in torch.

Example:
    >>> from ctlens.data import StudyAwareBatchSampler
    >>> [sorted(b) for b in StudyAwareBatchSampler(["a", "b", "b"], batch_size=2, shuffle=False)]
    [[0], [1, 2]]
"""

from __future__ import annotations

from ctlens.core.lazy import lazy_exports

_EXPORTS = {
    "ImageDataset": "ctlens.data.image_dataset",
    "StudyAwareBatchSampler": "ctlens.data.sampler",
    "StudyLabels": "ctlens.data.labels",
    "collate_padded": "ctlens.data.collate",
    "collate_tokens": "ctlens.data.collate",
    "load_study_labels": "ctlens.data.labels",
    "SliceInterpolationDataset": "ctlens.data.slice_pairs",
    "simulate_thick": "ctlens.data.slice_profiles",
    "CTReportDataset": "ctlens.data.ct_report",
    "CT_RATE_FINDINGS": "ctlens.data.ct_report",
    "collate_ct_report": "ctlens.data.ct_report",
    "patient_split": "ctlens.data.ct_report",
    "read_labels": "ctlens.data.ct_report",
    "read_reports": "ctlens.data.ct_report",
}
_NEED_TORCH = {"ctlens.data.image_dataset", "ctlens.data.sampler", "ctlens.data.collate", "ctlens.data.slice_pairs"}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, needs_torch=_NEED_TORCH)
