"""The analysis overlays as volumes on the study's own grid: the heatmap (float32, 0..1) and one label volume.

The label volume (uint8) holds the lungs (1 right, 2 left; 1 alone for a lung or region-of-interest mask whose
sides are not known) and, written after them so they win, each candidate's bounding region as ``10 + k``
(k from 1 in the findings' order): its per-slice in-plane boxes (``slice_boxes``), else its ``bbox``, both
inclusive voxel bounds. Larger regions are written first, so a small nodule inside a mass's box keeps its own
value. :func:`label_legend` names the values for the page.

Example:
    >>> import numpy as np
    >>> lungs = np.zeros((4, 8, 8), np.uint8); lungs[:, 1:7, 1:4] = 1; lungs[:, 1:7, 5:8] = 2
    >>> cand = {"bbox": [1, 2, 2, 2, 3, 3], "slice_boxes": {"1": [2, 2, 3, 3]}}
    >>> out = label_volume((4, 8, 8), lungs=lungs, candidates=[cand])
    >>> int(out[1, 2, 2]), int(out[2, 2, 2]), int(out[0, 2, 6]), out.dtype.name
    (11, 1, 2, 'uint8')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

RIGHT_LUNG, LEFT_LUNG, REGION = 1, 2, 1
CANDIDATE_BASE = 10
MAX_CANDIDATES = 255 - CANDIDATE_BASE


def heatmap_volume(heatmap_u8: np.ndarray) -> np.ndarray:
    """The stored heatmap (uint8, 0..255) as float32 in [0, 1].

    Example:
        >>> heatmap_volume(np.array([[[0, 255]]], np.uint8)).tolist()
        [[[0.0, 1.0]]]
    """
    return np.asarray(heatmap_u8, dtype=np.float32) / np.float32(255.0)


def _boxes(cand: Mapping[str, Any], shape: Sequence[int]) -> list[tuple[int, int, int, int, int]]:
    """``(z, y0, x0, y1, x1)`` inclusive boxes of one candidate, clipped to ``shape``; [] when it has none."""
    out = []
    per_slice = cand.get("slice_boxes")
    if isinstance(per_slice, Mapping) and per_slice:
        for z, box in per_slice.items():
            if isinstance(box, list | tuple) and len(box) == 4:
                out.append((int(z), *(int(v) for v in box)))
    else:
        bbox = cand.get("bbox")
        if isinstance(bbox, list | tuple) and len(bbox) == 6:
            z0, y0, x0, z1, y1, x1 = (int(v) for v in bbox)
            out = [(z, y0, x0, y1, x1) for z in range(z0, z1 + 1)]
    clipped = []
    for z, y0, x0, y1, x1 in out:
        if 0 <= z < shape[0]:
            y0, x0 = max(y0, 0), max(x0, 0)
            y1, x1 = min(y1, shape[1] - 1), min(x1, shape[2] - 1)
            if y0 <= y1 and x0 <= x1:
                clipped.append((z, y0, x0, y1, x1))
    return clipped


def label_volume(
    shape: Sequence[int],
    *,
    lungs: np.ndarray | None = None,
    roi: np.ndarray | None = None,
    candidates: Sequence[Any] = (),
) -> np.ndarray:
    """The uint8 label volume of one study (see the module doc): lungs or ROI, then candidates.

    Example (candidate 2, a nodule inside candidate 1's box, keeps its value; an unknown side is label 1):
        >>> mass, nodule = {"bbox": [0, 0, 0, 1, 4, 4]}, {"bbox": [1, 2, 2, 1, 2, 2]}
        >>> out = label_volume((2, 6, 6), roi=np.ones((2, 6, 6), bool), candidates=[mass, nodule])
        >>> int(out[1, 2, 2]), int(out[1, 3, 3]), int(out[0, 5, 5]), sorted(np.unique(out).tolist())
        (12, 11, 1, [1, 11, 12])
    """
    out = np.zeros(tuple(int(s) for s in shape), np.uint8)
    if lungs is not None and np.shape(lungs) == out.shape:
        lungs = np.asarray(lungs)
        out[lungs == RIGHT_LUNG] = RIGHT_LUNG
        out[lungs == LEFT_LUNG] = LEFT_LUNG
    elif roi is not None and np.shape(roi) == out.shape:
        out[np.asarray(roi) > 0] = REGION
    regions = []
    for k, cand in enumerate(candidates[:MAX_CANDIDATES], start=1):
        if isinstance(cand, Mapping):
            boxes = _boxes(cand, out.shape)
            size = sum((y1 - y0 + 1) * (x1 - x0 + 1) for _, y0, x0, y1, x1 in boxes)
            regions.append((size, k, boxes))
    for _, k, boxes in sorted(regions, key=lambda r: (-r[0], r[1])):  # larger first: small ones stay visible
        for z, y0, x0, y1, x1 in boxes:
            out[z, y0 : y1 + 1, x0 : x1 + 1] = CANDIDATE_BASE + k
    return out


def label_legend(result: Mapping[str, Any] | None) -> dict[str, str]:
    """Label value (as text) -> what it marks, for a study's stored result.

    Example:
        >>> label_legend({"has_lung_labels": True, "findings": {"candidates": [{"kind": "mass", "diameter_mm": 46}]}})
        {'1': 'right lung', '2': 'left lung', '11': 'candidate 1 (mass, 46 mm)'}
        >>> label_legend({"has_roi": True, "findings": {"candidates": []}})
        {'1': 'region of interest'}
    """
    result = result or {}
    legend: dict[str, str] = {}
    if result.get("has_lung_labels"):
        legend.update({str(RIGHT_LUNG): "right lung", str(LEFT_LUNG): "left lung"})
    elif result.get("has_roi"):
        legend[str(REGION)] = "region of interest"
    findings = result.get("findings") if isinstance(result.get("findings"), Mapping) else {}
    for k, cand in enumerate((findings.get("candidates") or [])[:MAX_CANDIDATES], start=1):
        if isinstance(cand, Mapping):
            size = f", {float(cand.get('diameter_mm') or 0):.0f} mm" if cand.get("diameter_mm") else ""
            legend[str(CANDIDATE_BASE + k)] = f"candidate {k} ({cand.get('kind') or 'region'}{size})"
    return legend
