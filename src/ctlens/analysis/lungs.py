"""Lung segmentation on CT: air threshold, outside air and bowel gas removed, airways cut, left / right split.

Steps (after Hu, Hoffman & Reinhardt, IEEE TMI 2001, "Automatic lung segmentation for accurate
quantitation of volumetric X-ray CT images", simplified for thick slices):

1. body mask (:func:`~ctlens.preprocess.masks.foreground_mask`, holes filled per slice), so air
   outside the patient is never lung;
2. air inside the body: ``HU < LUNG_THRESHOLD_HU`` (-400 HU, between lung parenchyma at about -850 HU
   and soft tissue at 0..60 HU; Hu et al. find optimal thresholds of -400..-500 HU);
3. trachea and main bronchi: traced slice by slice from the most superior slice down, as small
   (< ``AIRWAY_MAX_AREA_CM2``) air components below -900 HU that overlap the airway of the slice above;
   the tracing stops where an airway component would join a lung-sized one;
4. 3-D components of what is left: lung components are the large ones (>= 5 % of the largest and
   >= ``MIN_LUNG_ML``) whose parenchyma is not pure air: bowel and stomach gas has more than 75 % of its
   core (the component eroded by one pixel in-plane) below -950 HU, lung 0-5 % (up to about 50 % in
   severe emphysema);
5. one component spanning both sides (lungs touching at the anterior junction) is split by in-plane
   erosion until two large parts appear, which then grow back into the mask;
6. sides from the patient coordinate (LPS +x is the patient's left); vessels inside each lung are filled
   slice by slice, so the mask is the lung, not only its air.

Example:
    >>> import numpy as np
    >>> from ctlens.analysis.phantoms import chest_phantom
    >>> vol, truth = chest_phantom()
    >>> seg = segment_lungs(vol.array.astype(np.float32), vol.spacing, vol.direction)
    >>> round(seg.volume_ml("left") / truth["left_ml"], 2), round(seg.volume_ml("right") / truth["right_ml"], 2)
    (1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ctlens.analysis.morphology import PLANE4, distance_in_plane, fill_holes_in_plane, nearest_label_in_plane
from ctlens.preprocess.masks import foreground_mask

__all__ = ["AIRWAY_MAX_AREA_CM2", "LUNG_THRESHOLD_HU", "MIN_LUNG_ML", "LungSegmentation", "segment_lungs"]

LUNG_THRESHOLD_HU = -400.0
AIRWAY_THRESHOLD_HU = -900.0
AIRWAY_MAX_AREA_CM2 = 6.0
MIN_LUNG_ML = 5.0
GAS_CORE_HU = -950.0
GAS_CORE_FRACTION = 0.75
RIGHT, LEFT = 1, 2
_PLANE8 = np.zeros((3, 3, 3), bool)
_PLANE8[1] = True


@dataclass
class LungSegmentation:
    """Lung masks on the grid they were computed on.

    ``labels``: 0 background, 1 right lung, 2 left lung. ``airway``: trachea and main bronchi that were
    removed. ``body``: the patient. ``spacing``: voxel size (z, y, x) mm.
    """

    labels: np.ndarray
    airway: np.ndarray
    body: np.ndarray
    spacing: tuple[float, float, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        """Both lungs."""
        return self.labels > 0

    def volume_ml(self, side: str = "both") -> float:
        """Lung volume in mL: ``"left"``, ``"right"`` or ``"both"``."""
        voxel_ml = float(np.prod(self.spacing)) / 1000.0
        if side == "both":
            return float(np.count_nonzero(self.labels)) * voxel_ml
        code = {"right": RIGHT, "left": LEFT}[side]
        return float(np.count_nonzero(self.labels == code)) * voxel_ml


def _superior_step(direction: np.ndarray) -> int:
    """+1 when increasing slice index moves to the head (LPS +z), else -1."""
    return 1 if float(np.asarray(direction)[2, 0]) >= 0 else -1


def _trace_airway(hu: np.ndarray, air: np.ndarray, spacing: Sequence[float], up: int) -> np.ndarray:
    """Trachea and main bronchi, followed slice by slice from the top while they stay small."""
    pixel_cm2 = spacing[1] * spacing[2] / 100.0
    max_px = AIRWAY_MAX_AREA_CM2 / pixel_cm2
    min_px = 0.3 / pixel_cm2
    order = range(hu.shape[0] - 1, -1, -1) if up > 0 else range(hu.shape[0])
    airway = np.zeros(hu.shape, bool)
    previous: np.ndarray | None = None
    started = False
    for z in order:
        lumen = air[z] & (hu[z] < AIRWAY_THRESHOLD_HU)
        all_air, n_all = ndimage.label(air[z])
        if n_all == 0:
            if started:
                break
            continue
        labels, n = ndimage.label(lumen)
        if n == 0:
            if started:
                break
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        air_sizes = np.bincount(all_air.ravel(), minlength=n_all + 1)
        keep = np.zeros(n + 1, bool)
        if not started:
            # seed: a compact, not-too-large lumen near the left-right centre of the body's air
            xs = np.nonzero(air[z].any(axis=0))[0]
            centre_x = 0.5 * (xs.min() + xs.max())
            width = max(1, xs.max() - xs.min())
            com = ndimage.center_of_mass(lumen, labels, range(1, n + 1))
            for i, (_, cx) in enumerate(com, start=1):
                parent = np.bincount(all_air[labels == i]).argmax()
                if min_px <= sizes[i] <= max_px and air_sizes[parent] <= max_px and abs(cx - centre_x) < 0.2 * width:
                    keep[i] = True
            if not keep.any():
                # lungs reach the top slice before any lone trachea: no airway tracing
                if n_all and air_sizes[1:].max() > max_px:
                    break
                continue
            started = True
        else:
            overlap = np.unique(labels[ndimage.binary_dilation(previous, iterations=2) & lumen])
            for i in overlap[overlap > 0]:
                parent = np.bincount(all_air[labels == i]).argmax()
                if sizes[i] <= max_px and air_sizes[parent] <= 2 * max_px:
                    keep[i] = True
            if not keep.any():
                break
        current = keep[labels]
        airway[z] = current
        previous = current
    return airway


def _split_sides(lung: np.ndarray, direction: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Labels 1 (right) / 2 (left) for a mask holding one or two lungs."""
    labels, n = ndimage.label(lung)
    sizes = np.bincount(labels.ravel())[1:] if n else np.array([])
    if n >= 2 and np.sort(sizes)[-2] >= 0.1 * sizes.max():
        seeds = labels
    else:
        # erode in-plane (thresholds on the in-plane distance to the background) until two large parts appear
        depth = distance_in_plane(lung, spacing[1:])
        seeds = np.zeros_like(labels)
        for radius in np.arange(1.0, 15.0, 1.0) * min(spacing[1:]):
            parts, m = ndimage.label(depth > radius)
            if m >= 2:
                s = np.bincount(parts.ravel())[1:]
                if np.sort(s)[-2] >= 0.1 * s.max():
                    seeds = parts
                    break
        if seeds.any():
            seeds = nearest_label_in_plane(seeds, lung, spacing[1:])
        else:
            # no split found: cut at the lungs' left-right centre (x axis of the array)
            xs = np.nonzero(lung.any(axis=(0, 1)))[0]
            mid = (xs.min() + xs.max()) // 2 if xs.size else lung.shape[2] // 2
            seeds = np.where(lung, 1, 0).astype(np.int32)
            seeds[:, :, mid:] *= 2
    # the two largest parts are the lungs; side from the LPS x of their centroids
    counts = np.bincount(seeds.ravel())
    counts[0] = 0
    top = np.argsort(counts)[::-1][:2]
    top = [t for t in top if counts[t] > 0]
    out = np.zeros(lung.shape, np.uint8)
    lps_x_axis = np.asarray(direction)[0]  # LPS x component of each array axis (z, y, x)
    for t in top:
        com = np.array(ndimage.center_of_mass(seeds == t))
        out[seeds == t] = 2  # placeholder, fixed below
        out[seeds == t] = LEFT if float(lps_x_axis @ com) >= float(lps_x_axis @ _centre(lung)) else RIGHT
    if len(top) == 2 and len(np.unique(out[out > 0])) == 1:
        # both on one side of the centroid is impossible; order them instead
        coms = [float(lps_x_axis @ np.array(ndimage.center_of_mass(seeds == t))) for t in top]
        left, right = (top[0], top[1]) if coms[0] > coms[1] else (top[1], top[0])
        out[seeds == left], out[seeds == right] = LEFT, RIGHT
    return out


def _centre(mask: np.ndarray) -> np.ndarray:
    return np.array(ndimage.center_of_mass(mask))


def segment_lungs(
    hu: np.ndarray,
    spacing: Sequence[float],
    direction: np.ndarray | None = None,
    *,
    threshold_hu: float = LUNG_THRESHOLD_HU,
    body: np.ndarray | None = None,
) -> LungSegmentation:
    """Segment both lungs of a CT (HU, ``[z, y, x]``); ``direction`` as in :class:`~ctlens.core.volume.Volume`.

    Returns a :class:`LungSegmentation`; an empty one (with a warning) when no lung-sized air is found.
    """
    direction = np.eye(3)[:, ::-1] if direction is None else np.asarray(direction)
    spacing = tuple(float(s) for s in spacing)
    warnings: list[str] = []
    if body is None:
        body = foreground_mask(hu, "ct")
    air = body & (hu < threshold_hu)
    airway = _trace_airway(hu, air, spacing, _superior_step(direction))
    if airway.any():
        airway = ndimage.binary_dilation(airway, _PLANE8) & air
    candidates = air & ~airway
    labels, n = ndimage.label(candidates)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    empty = LungSegmentation(np.zeros(hu.shape, np.uint8), airway, body, spacing, warnings)
    if n == 0:
        warnings.append("no air inside the body: no lungs in this volume")
        return empty
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    # bowel / stomach gas is pure air inside (its eroded core is below -950 HU); lung holds parenchyma
    eroded = ndimage.binary_erosion(candidates, PLANE4)
    core = eroded & (hu < GAS_CORE_HU)
    core_n = np.bincount(labels[eroded], minlength=n + 1)
    gas_n = np.bincount(labels[core], minlength=n + 1)
    gas = gas_n > GAS_CORE_FRACTION * np.maximum(core_n, 1)
    sizes[gas] = 0
    keep = sizes >= max(MIN_LUNG_ML / voxel_ml, 0.05 * sizes.max())
    keep[0] = False
    if not keep.any():
        warnings.append(f"no lung-sized air (>= {MIN_LUNG_ML} mL) inside the body: no lungs in this volume")
        return empty
    lung = keep[labels]
    sides = _split_sides(lung, direction, spacing)
    filled = np.zeros_like(sides)
    for code in (RIGHT, LEFT):
        part = fill_holes_in_plane(sides == code)
        filled[part & (filled == 0)] = code
    return LungSegmentation(filled, airway, body, spacing, warnings)
