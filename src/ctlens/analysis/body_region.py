"""Which body region a CT covers (head / chest / abdomen / pelvis), and sanity warnings.

Each slice of the analysis grid is labelled from simple anatomy:

* ``head``: a closed bone ring (``HU > 300``, holes filled) covering at least half of a body section smaller
  than 400 cm², with soft tissue (0..80 HU median) inside: the skull around the brain;
* ``chest``: segmented lung covers at least 5 % of the body section;
* ``head`` also: a section smaller than 400 cm² that is at least 15 % bone (skull base, vertex);
* ``pelvis``: a section of at least 400 cm² whose outer thirds are at least 4 % bone (``HU > 200``: iliac
  wings, femoral heads), where the abdomen holds only thin ribs;
* ``abdomen``: any other slice with a body section of at least 100 cm² (``neck`` below that).

The volume's region is the most frequent slice label (``head`` wins whenever at least a third of the slices
are head, since a head CT also shows the neck). Warnings: a slice axis more than 30 degrees from the
patient's head-foot axis (non-axial), a body cut by the field of view on most slices (cropped), and
intensities that are not on the HU scale (not CT).

Example:
    >>> import numpy as np
    >>> from ctlens.analysis.phantoms import head_phantom
    >>> vol, _ = head_phantom()
    >>> body_region(vol).region
    'head'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ctlens.core.volume import Volume
from ctlens.preprocess.masks import foreground_mask
from ctlens.preprocess.mode import detect_mode

__all__ = ["REGIONS", "BodyRegion", "body_region", "classify_slices", "geometry_warnings"]

REGIONS = ("head", "neck", "chest", "abdomen", "pelvis")
HEAD_MAX_AREA_CM2 = 400.0
NECK_MAX_AREA_CM2 = 100.0
LUNG_MIN_FRACTION = 0.05
HEAD_BONE_FRACTION = 0.15
PELVIS_BONE_FRACTION = 0.04
NON_AXIAL_DEG = 30.0


@dataclass
class BodyRegion:
    """The volume's region, the fraction of slices per region, per-slice labels and warnings."""

    region: str
    coverage: dict[str, float] = field(default_factory=dict)
    per_slice: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _slice_label(hu: np.ndarray, body: np.ndarray, lung: np.ndarray | None, pixel_cm2: float) -> str:
    area = float(body.sum()) * pixel_cm2
    if area < 1.0:
        return ""
    if area < HEAD_MAX_AREA_CM2:
        bone = (hu > 300) & body
        if bone.any():
            inside = ndimage.binary_fill_holes(bone) & ~bone
            if inside.sum() * pixel_cm2 >= 0.4 * area and 0.0 <= float(np.median(hu[inside])) <= 80.0:
                return "head"
    if lung is not None and lung.sum() >= LUNG_MIN_FRACTION * body.sum():
        return "chest"
    xs = np.nonzero(body.any(axis=0))[0]
    third = (xs.max() - xs.min() + 1) // 3
    outer = body.copy()
    outer[:, xs.min() + third : xs.max() + 1 - third] = False
    if area < HEAD_MAX_AREA_CM2 and ((hu > 300) & body).sum() >= HEAD_BONE_FRACTION * body.sum():
        return "head"  # skull base or vertex: much bone, no closed ring
    if area >= HEAD_MAX_AREA_CM2 and ((hu > 200) & outer).sum() >= PELVIS_BONE_FRACTION * outer.sum():
        return "pelvis"
    return "abdomen" if area >= NECK_MAX_AREA_CM2 else "neck"


def classify_slices(
    hu: np.ndarray, body: np.ndarray, spacing: tuple[float, float, float], lung: np.ndarray | None = None
) -> list[str]:
    """One label per slice (``""`` for a slice without body); see the module docs for the rules."""
    pixel_cm2 = spacing[1] * spacing[2] / 100.0
    return [_slice_label(hu[z], body[z], None if lung is None else lung[z], pixel_cm2) for z in range(hu.shape[0])]


def geometry_warnings(volume: Volume, body: np.ndarray | None = None) -> list[str]:
    """Warnings about orientation, cropping and modality of a volume."""
    out = []
    cos = abs(float(np.asarray(volume.direction)[2, 0]))
    angle = float(np.degrees(np.arccos(min(1.0, cos))))
    if angle > NON_AXIAL_DEG:
        out.append(
            f"slice axis is {angle:.0f} degrees from the head-foot axis: not an axial series; "
            "region and side rules assume axial slices"
        )
    mode, reason = detect_mode(volume)
    if mode != "ct":
        out.append(f"not a CT on the HU scale ({reason})")
    if body is not None and body.any():
        # cropped: more than 5 % of the field of view's border pixels are body, on most slices
        border = np.concatenate(
            [body[:, [0, -1], :].reshape(body.shape[0], -1), body[:, :, [0, -1]].reshape(body.shape[0], -1)], axis=1
        )
        edge = border.mean(axis=1) > 0.05
        present = body.any(axis=(1, 2))
        if present.sum() and edge[present].mean() > 0.5:
            out.append("the body touches the edge of the field of view on most slices: the image may be cropped")
    return out


def body_region(
    volume: Volume,
    *,
    hu: np.ndarray | None = None,
    body: np.ndarray | None = None,
    lung: np.ndarray | None = None,
    spacing: tuple[float, float, float] | None = None,
) -> BodyRegion:
    """Region of a CT volume; pass ``hu``/``body``/``lung``/``spacing`` of a working grid to reuse them."""
    hu = volume.array.astype(np.float32) if hu is None else hu
    spacing = volume.spacing if spacing is None else spacing
    body = foreground_mask(hu, "ct") if body is None else body
    labels = classify_slices(hu, body, spacing, lung)
    counts = Counter(label for label in labels if label)
    total = sum(counts.values())
    coverage = {r: round(counts.get(r, 0) / total, 3) for r in REGIONS} if total else {}
    if not total:
        region = "unknown"
    elif counts.get("head", 0) >= total / 3:
        region = "head"
    else:
        region = counts.most_common(1)[0][0]
    return BodyRegion(region, coverage, labels, geometry_warnings(volume, body))
