"""2-D images (X-ray, MR or CT screenshots): ROI mask, heatmap and boxes from the codec's detail detector.

The image is mapped to a pseudo-HU scale first (its 1st..99th percentile onto -1000..1000) so the codec's
:func:`~ctlens.codec.roi.roi_score` (gradient + local standard deviation, saturating at 100 HU) sees the
same contrast on an 8-bit PNG as on a CT slice. The ROI is :func:`~ctlens.codec.roi.detect_roi`; each
connected ROI region (per slice) is a *texture region*: image detail, not a lesion. The ``MAX_TEXTURE_REGIONS``
regions with the highest mean detail score become ``kind="texture"`` candidates (best first, ties: larger
first), with their box; ``measurements["texture_regions"]`` counts all of them and a warning says how many were
left out. The heatmap is the detail score smoothed (Gaussian, sigma 2 pixels) and rescaled to [0, 1].

Example:
    >>> import numpy as np
    >>> img = np.zeros((64, 64), np.uint8); img[20:40, 24:44] = 200
    >>> f = analyze_image2d(img)
    >>> f.region, len(f.candidates), f.candidates[0].kind, f.heatmap.shape
    ('image2d', 1, 'texture', (1, 64, 64))
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from ctlens.analysis.findings import Candidate, Findings
from ctlens.codec.roi import detect_roi, roi_score
from ctlens.core.errors import UnsupportedFormatError
from ctlens.core.volume import Volume

__all__ = ["MAX_TEXTURE_REGIONS", "analyze_image2d", "pseudo_hu"]

METHOD = (
    "detail-based ROI (codec.roi: Sobel gradient + local std), per slice; candidates are texture regions "
    "(image detail, not lesions), best detail score first"
)
MAX_TEXTURE_REGIONS = 5
"""Texture-region candidates listed at most (the highest mean detail scores)."""


def pseudo_hu(image: np.ndarray) -> np.ndarray:
    """Float32 image with its 1st..99th percentile mapped to -1000..1000 (flat images map to -1000).

    Example:
        >>> pseudo_hu(np.array([[0, 50, 100]])).tolist()
        [[-1000.0, 0.0, 1000.0]]
    """
    a = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(a, [1, 99]) if a.size else (0.0, 0.0)
    if hi <= lo:
        return np.full(a.shape, -1000.0, np.float32)
    return (np.clip((a - lo) / (hi - lo), 0.0, 1.0) * 2000.0 - 1000.0).astype(np.float32)


def _as_stack(data: Volume | np.ndarray | str | Path) -> tuple[np.ndarray, tuple[float, float, float], Volume | None]:
    if isinstance(data, str | Path):
        from ctlens.io import load

        data = load(data)
    if isinstance(data, Volume):
        return np.asarray(data.array), data.spacing, data
    arr = np.asarray(data)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma for an RGB(A) array
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape) == 0:
        raise UnsupportedFormatError(f"expected a 2-D image (or a stack of them), got an array of shape {arr.shape}")
    return arr, (1.0, 1.0, 1.0), None


def analyze_image2d(
    data: Volume | np.ndarray | str | Path, *, percentile: float = 75.0, max_regions: int = MAX_TEXTURE_REGIONS
) -> Findings:
    """ROI mask, heatmap and texture-region boxes of a 2-D image (path, array ``[y, x]`` or a Volume of 2-D slices).

    At most ``max_regions`` candidates, sorted by score (module doc).
    """
    t0 = time.perf_counter()
    arr, spacing, volume = _as_stack(data)
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr)
    stack = np.stack([pseudo_hu(s) for s in arr]) if volume is None or volume.modality != "CT" else arr
    stack = stack.astype(np.float32, copy=False)
    score = roi_score(stack)
    roi = detect_roi(stack, percentile=percentile, spacing=spacing, dilation_mm=2.0 * min(spacing[1:]) * 2)
    heat = ndimage.gaussian_filter(score, sigma=(0, 2, 2))
    peak = float(heat.max())
    heat = (heat / peak if peak > 0 else heat).astype(np.float32)
    labels, n = ndimage.label(roi, structure=np.array([np.zeros((3, 3)), np.ones((3, 3)), np.zeros((3, 3))], bool))
    candidates = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == i
        zz, yy, xx = np.nonzero(comp)
        off = np.array([s.start for s in sl])
        centre = np.array([zz.mean(), yy.mean(), xx.mean()]) + off
        lo, hi = off + [zz.min(), yy.min(), xx.min()], off + [zz.max(), yy.max(), xx.max()]
        centre_mm = tuple(float(v) for v in volume.world(centre)) if volume is not None else (0.0, 0.0, 0.0)
        candidates.append(
            Candidate(
                centre_voxel=tuple(float(c) for c in centre),  # type: ignore[arg-type]
                centre_mm=centre_mm,  # type: ignore[arg-type]
                diameter_mm=float(2.0 * np.sqrt(comp.sum() / max(1, len(np.unique(zz))) / np.pi) * spacing[1]),
                slice_range=(int(lo[0]), int(hi[0])),
                bbox=(*(int(v) for v in lo), *(int(v) for v in hi)),  # type: ignore[arg-type]
                score=round(float(score[sl][comp].mean()), 4),
                kind="texture",
                slice_boxes={int(lo[0]): (int(lo[1]), int(lo[2]), int(hi[1]), int(hi[2]))} if lo[0] == hi[0] else {},
            )
        )
    candidates.sort(key=lambda c: (-c.score, -(c.bbox[4] - c.bbox[1] + 1) * (c.bbox[5] - c.bbox[2] + 1)))
    total = len(candidates)
    warnings = []
    if total > max_regions:
        warnings.append(
            f"{total} texture regions (image detail, not lesions): the {max_regions} with the highest detail score "
            "are listed"
        )
    return Findings(
        region="image2d",
        method=METHOD,
        measurements={
            "roi_fraction": round(float(roi.mean()), 4),
            "roi_regions": total,
            "texture_regions": total,
            "texture_regions_listed": min(total, max_regions),
        },
        candidates=candidates[:max_regions],
        warnings=warnings,
        parameters={
            "percentile": percentile,
            "intensity": "1st..99th percentile -> -1000..1000 pseudo-HU",
            "max_texture_regions": max_regions,
            "candidates": "texture regions sorted by mean detail score",
        },
        timings={"total_s": time.perf_counter() - t0},
        heatmap=heat,
        roi_mask=roi,
        input_shape=tuple(int(s) for s in stack.shape),
    )
