"""Head CT: brain mask, hyperdense (candidate haemorrhage) regions, bone-window sanity.

Method (on the analysis grid):

1. skull: ``HU > 300``; its holes filled slice by slice give the intracranial space; the brain mask is
   the intracranial soft tissue (-20..100 HU), opened in-plane, largest 3-D component;
2. hyperdense regions: ``HYPERDENSE_HU`` (50..90 HU, acute blood in the brain window) inside the brain at
   least ``BONE_MARGIN_MM`` (5 mm, 3-D) from the skull and from calcifications (> 150 HU) and at least
   ``BRAIN_MARGIN_MM`` (6 mm, 3-D) inside the brain mask, which removes the partial-volume rim of the inner
   table (thick slices cut the skull tangentially at the vertex); 3-D components of at least ``MIN_VOLUME_ML`` (0.1 mL);
3. score in [0, 1] = ``(1 - exp(-V / 0.5 mL)) * clip((mean HU - 45) / 25, 0, 1)``: large and clearly
   hyperdense is high; noise specks of normal grey matter (35..45 HU) stay low. On the normal GE head CT
   of the shared data (dcm_qa_ct_ge) no candidate reaches ``REPORT_SCORE`` (0.5); only candidates at or
   above it are reported;
4. bone sanity: the skull must hold voxels above 1000 HU (cortical bone); otherwise a warning.

Example:
    >>> from ctlens.analysis.phantoms import head_phantom
    >>> vol, truth = head_phantom(bleed_radius_mm=8.0)
    >>> res = analyze_head(vol.array.astype("float32"), vol.spacing)
    >>> len(res.components), res.components[0]["score"] > 0.9
    (1, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ctlens.analysis.heatmaps import candidate_heatmap
from ctlens.analysis.morphology import PLANE4, component_extent

__all__ = ["BONE_MARGIN_MM", "HYPERDENSE_HU", "MIN_VOLUME_ML", "REPORT_SCORE", "HeadAnalysis", "analyze_head"]

HYPERDENSE_HU = (50.0, 90.0)
BONE_MARGIN_MM = 5.0
BRAIN_MARGIN_MM = 6.0
MIN_VOLUME_ML = 0.1
REPORT_SCORE = 0.5


@dataclass
class HeadAnalysis:
    """Brain mask, candidate components (dicts, best first), label image and heatmap on the analysis grid."""

    brain: np.ndarray
    labels: np.ndarray
    heatmap: np.ndarray
    components: list[dict] = field(default_factory=list)
    measurements: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def hyperdense_score(volume_ml: float, mean_hu: float) -> float:
    """``(1 - exp(-V / 0.5)) * clip((mean_hu - 45) / 25, 0, 1)``.

    Example:
        >>> round(hyperdense_score(2.0, 70.0), 3), hyperdense_score(2.0, 40.0)
        (0.982, 0.0)
    """
    return float((1.0 - np.exp(-volume_ml / 0.5)) * np.clip((mean_hu - 45.0) / 25.0, 0.0, 1.0))


def analyze_head(hu: np.ndarray, spacing: Sequence[float], *, report_score: float = REPORT_SCORE) -> HeadAnalysis:
    """Brain mask and hyperdense candidates of a head CT (HU ``[z, y, x]``)."""
    spacing = tuple(float(s) for s in spacing)
    warnings: list[str] = []
    bone = hu > 300
    intracranial = ndimage.binary_fill_holes(bone, PLANE4) & ~bone
    tissue = intracranial & (hu > -20) & (hu < 100)
    tissue = ndimage.binary_opening(tissue, PLANE4, iterations=2)
    labels, n = ndimage.label(tissue)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if n == 0:
        empty = np.zeros(hu.shape, np.int32)
        warnings.append("no closed skull with soft tissue inside: no brain mask")
        return HeadAnalysis(np.zeros(hu.shape, bool), empty, np.zeros(hu.shape, np.float32), [], {}, warnings)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    brain = labels == sizes.argmax()
    brain = ndimage.binary_fill_holes(brain, PLANE4)
    if not (hu > 1000).any():
        warnings.append("no voxel above 1000 HU: no cortical bone, check the HU scaling of this head CT")
    dense_bone = hu > 150
    # 3-D distances: thick slices cut the skull tangentially at the vertex and the skull base, where the
    # brain right above or below bone is brightened by partial volume
    far_from_bone = ndimage.distance_transform_edt(~dense_bone, sampling=spacing) > BONE_MARGIN_MM
    deep = ndimage.distance_transform_edt(brain, sampling=spacing) > BRAIN_MARGIN_MM
    inner = brain & far_from_bone & deep
    hyper = inner & (hu >= HYPERDENSE_HU[0]) & (hu <= HYPERDENSE_HU[1])
    comps, m = ndimage.label(hyper)
    found = []
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        comp = comps[sl] == i
        volume = float(comp.sum()) * voxel_ml
        if volume < MIN_VOLUME_ML:
            continue
        mean = float(hu[sl][comp].mean())
        score = hyperdense_score(volume, mean)
        extent = component_extent(comp, [s.start for s in sl])
        found.append(
            {
                "label": i,
                "volume_ml": volume,
                "mean_hu": mean,
                "score": score,
                "centre": extent.centre,
                "bbox": extent.bbox,
                "slices": extent.slices,
            }
        )
    found.sort(key=lambda c: -c["score"])
    measurements = {
        "brain_volume_ml": round(float(brain.sum()) * voxel_ml, 1),
        "hyperdense_components": len(found),
        "max_hyperdense_score": round(found[0]["score"], 3) if found else 0.0,
    }
    kept = [c for c in found if c["score"] >= report_score]
    out_labels = np.zeros(hu.shape, np.int32)
    for rank, c in enumerate(kept, start=1):
        out_labels[comps == c["label"]] = rank
        c["label"] = rank
    heat = candidate_heatmap(out_labels, {c["label"]: c["score"] for c in kept})
    return HeadAnalysis(brain, out_labels, heat, kept, measurements, warnings)
