"""Nodule / mass candidates inside and at the border of the lungs, with a calibrated heatmap.

Method (morphological, explainable; runs on the analysis grid of about 1.3 mm in-plane):

1. search region: each lung closed in-plane with a disk of ``CLOSING_RADIUS_MM`` (30 mm; computed with
   Euclidean distance transforms) and its holes filled, so nodules inside the lung and masses bulging
   into it from the pleura or the mediastinum are inside;
2. dense tissue: ``HU > DENSE_HU`` (-300 HU) in that region;
3. vessel suppression: in-plane opening with a disk of ``OPENING_RADIUS_MM`` (4 mm) removes vessels and
   airway walls thinner than 8 mm, and with them solid nodules below about 8 mm (below 6 mm the Fleischner
   Society 2017 guideline, MacMahon et al., Radiology 284:228, advises no routine follow-up);
4. each 3-D connected component is a candidate, described by its volume, equivalent-sphere diameter,
   in-plane inscribed radius, mean HU, and *lung contact*: the fraction of a 2-voxel in-plane ring around
   it that is aerated lung (1 for a nodule surrounded by lung, about 0.5 for a mass on the pleura, low for
   slivers of chest wall, heart or liver dome that the closing pulled in);
5. vessels are not nodules: the voxels of each component are classified blob or tube by multi-scale
   Hessian eigenvalues (:mod:`ctlens.analysis.vesselness`); a component with less than ``MIN_BLOB_FRACTION``
   (20 %) blob voxels and less than ``MASS_BLOB_ML`` (4 mL) of them is a vessel segment, branching or
   crossing, and is dropped (synthetic vessel trees: at most 16 % and 3 mL; spheres, hemispheres on the
   pleura: 49-83 %, a 9 mm nodule on a 9 cm long vessel: 24 %); a *small* component, with less than
   ``MIN_BLOB_ML`` (0.75 mL, the blob part of a nodule of about 12 mm) of blob voxels, must moreover be
   mostly blob (at least ``SMALL_BLOB_FRACTION``, 50 %): a free nodule of 8-12 mm is round through and
   through (70-100 % blob voxels on development phantoms), while the short vessel pieces that the opening
   leaves of a vessel tree are 20-37 % blob; and it must be most of the dense structure it was opened from
   (the connected ``HU > DENSE_HU`` tissue before the opening at most ``SMALL_MAX_ATTACHED`` = 2.5 times its
   volume: the opening trims the caps of a small sphere, 6-25 % on development phantoms, and thin vessels
   touching it add some; the single-slice stubs that the opening leaves of a vessel tree on thick slices are
   round in the slice but belong to a structure 10-20 times their size). Before, an absolute 0.75 mL floor
   dropped every nodule below about 13 mm (the opening also trims a small sphere's caps);
6. score in [0, 1] = ``size * contact`` with ``size = 1 - exp(-d / 15 mm)`` (``d`` equivalent diameter of
   the *blob voxels*, so the vessels attached to a nodule do not make it bigger) and
   ``contact = clip((c - 0.15) / 0.45, 0, 1)``; candidates below ``MIN_SCORE`` (0.3) are dropped and at
   most ``MAX_CANDIDATES`` are kept, best first;
7. masses (equivalent diameter >= 30 mm) are followed into adjacent slices where they merge with the
   mediastinum or chest wall and leave the search region (:func:`_track_mass`), for at most half their own
   extent along z;
8. heatmap: each candidate's voxels carry its score, smoothed in-plane (Gaussian, sigma 2 voxels) and
   rescaled so every candidate's peak equals its score: a heatmap value is a candidate score.

Example:
    >>> import numpy as np
    >>> from ctlens.analysis.phantoms import chest_phantom
    >>> from ctlens.analysis.lungs import segment_lungs
    >>> vol, truth = chest_phantom(nodule_radius_mm=9.0)
    >>> hu = vol.array.astype(np.float32)
    >>> lungs = segment_lungs(hu, vol.spacing, vol.direction)
    >>> found = detect_lung_candidates(hu, vol.spacing, lungs)
    >>> len(found.components), found.components[0].side
    (1, 'left')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ctlens.analysis.heatmaps import candidate_heatmap
from ctlens.analysis.lungs import LEFT, RIGHT, LungSegmentation
from ctlens.analysis.morphology import (
    closing_in_plane,
    component_extent,
    distance_in_plane,
    fill_holes_in_plane,
    opening_in_plane,
)
from ctlens.analysis.vesselness import SCALES_MM, blob_voxels

__all__ = [
    "CLOSING_RADIUS_MM",
    "DENSE_HU",
    "MASS_BLOB_ML",
    "MAX_CANDIDATES",
    "MIN_BLOB_FRACTION",
    "MIN_BLOB_ML",
    "MIN_SCORE",
    "OPENING_RADIUS_MM",
    "SMALL_BLOB_FRACTION",
    "SMALL_MAX_ATTACHED",
    "LungCandidate",
    "LungCandidates",
    "detect_lung_candidates",
]

CLOSING_RADIUS_MM = 30.0
DENSE_HU = -300.0
OPENING_RADIUS_MM = 4.0
SIZE_SCALE_MM = 15.0
CONTACT_LOW, CONTACT_RANGE = 0.15, 0.45
MIN_SCORE = 0.3
MAX_CANDIDATES = 10
MIN_VOLUME_ML = 0.05
MIN_BLOB_FRACTION = 0.2
MIN_BLOB_ML = 0.75
SMALL_BLOB_FRACTION = 0.5
SMALL_MAX_ATTACHED = 2.5
MASS_BLOB_ML = 4.0
TRACK_MIN_DIAMETER_MM = 30.0
TRACK_MARGIN_MM = 3.0
TRACK_MIN_CONTACT = 0.1


@dataclass
class LungCandidate:
    """One component on the analysis grid; ``slices`` maps z -> in-plane box (y0, x0, y1, x1), inclusive."""

    label: int
    volume_ml: float
    diameter_mm: float
    inscribed_mm: float
    contact: float
    mean_hu: float
    centre: tuple[float, float, float]
    bbox: tuple[int, int, int, int, int, int]
    slices: dict[int, tuple[int, int, int, int]]
    side: str
    score: float
    tracked_slices: int = 0
    blob_fraction: float = 0.0
    blob_volume_ml: float = 0.0


@dataclass
class LungCandidates:
    """Candidates (best first), their label image and the heatmap, all on the analysis grid."""

    components: list[LungCandidate] = field(default_factory=list)
    labels: np.ndarray | None = None
    heatmap: np.ndarray | None = None
    region: np.ndarray | None = None


def _track_mass(
    c: LungCandidate,
    labels: np.ndarray,
    hu: np.ndarray,
    body: np.ndarray,
    aerated: np.ndarray,
    spacing: Sequence[float],
    dense_hu: float,
    opening_radius_mm: float,
) -> None:
    """Follow a mass into the slices above and below where it merges with the mediastinum or chest wall.

    Starting from the candidate's in-plane footprint (all its slices projected), each next slice keeps the
    dense tissue (opened like the candidates) within ``TRACK_MARGIN_MM`` of the footprint that overlaps it;
    tracking stops when that piece shrinks below a quarter of the footprint, loses contact with aerated lung
    (ring contact < ``TRACK_MIN_CONTACT``), or after half the candidate's own extent along z. Adds the
    tracked slices to ``c.slices`` / ``c.bbox`` and to ``labels``.
    """
    mine = labels == c.label
    footprint0 = mine.any(axis=0)
    z0, z1 = c.bbox[0], c.bbox[3]
    max_steps = int((z1 - z0 + 1) // 2)
    ring_struct = ndimage.generate_binary_structure(2, 1)
    for step in (1, -1):
        z, footprint = (z1 if step > 0 else z0), footprint0
        for _ in range(max_steps):
            zn = z + step
            if not 0 <= zn < hu.shape[0]:
                break
            near = distance_in_plane(~footprint[None], spacing[1:])[0] <= TRACK_MARGIN_MM
            dense = opening_in_plane(((hu[zn] > dense_hu) & body[zn] & near)[None], opening_radius_mm, spacing[1:])[0]
            parts, n = ndimage.label(dense)
            keep = np.unique(parts[dense & footprint])
            piece = np.isin(parts, keep[keep > 0]) & (labels[zn] == 0)
            if n == 0 or piece.sum() < 0.25 * footprint.sum():
                break
            ring = ndimage.binary_dilation(piece, ring_struct, iterations=2) & ~piece
            if float(aerated[zn][ring].mean()) < TRACK_MIN_CONTACT:
                break
            labels[zn][piece] = c.label
            ys, xs = np.nonzero(piece)
            c.slices[int(zn)] = (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()))
            c.tracked_slices += 1
            z, footprint = zn, piece
    zs = sorted(c.slices)
    boxes = np.array([c.slices[z] for z in zs])
    c.bbox = (
        zs[0],
        int(boxes[:, 0].min()),
        int(boxes[:, 1].min()),
        zs[-1],
        int(boxes[:, 2].max()),
        int(boxes[:, 3].max()),
    )


def _bbox_crop(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Bounding box of a mask with an in-plane margin (whole slices kept in z)."""
    idx = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
    out = [slice(int(idx[0][0]), int(idx[0][-1]) + 1)]
    for ax in (1, 2):
        out.append(slice(max(0, int(idx[ax][0]) - margin), min(mask.shape[ax], int(idx[ax][-1]) + 1 + margin)))
    return tuple(out)


def _blob_share(h: np.ndarray, comps: np.ndarray, label: int, sl: tuple[slice, ...], spacing) -> tuple[float, int]:
    """Fraction and count of blob voxels of component ``label`` (box ``sl``), the Hessian taken with a margin."""
    reach = [int(np.ceil(2.0 * max(SCALES_MM) / s)) for s in spacing]
    box = tuple(slice(max(0, a.start - r), min(n, a.stop + r)) for a, r, n in zip(sl, reach, h.shape, strict=True))
    comp = comps[box] == label
    blobs = blob_voxels(h[box], spacing, comp)
    n_blob = int(np.count_nonzero(blobs))
    return n_blob / max(1, int(comp.sum())), n_blob


def _component_sizes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the 3-D components of ``mask`` and their voxel counts (index = label)."""
    labels, _ = ndimage.label(mask)
    return labels, np.bincount(labels.ravel())


def _equivalent_diameter(volume_ml: float) -> float:
    return float((6.0 * volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0))


def candidate_score(diameter_mm: float, contact: float) -> float:
    """The documented score: ``(1 - exp(-d / 15)) * clip((contact - 0.15) / 0.45, 0, 1)``.

    Example:
        >>> round(candidate_score(30.0, 0.6), 3), candidate_score(30.0, 0.1)
        (0.865, 0.0)
    """
    size = 1.0 - np.exp(-diameter_mm / SIZE_SCALE_MM)
    touch = float(np.clip((contact - CONTACT_LOW) / CONTACT_RANGE, 0.0, 1.0))
    return float(size * touch)


def detect_lung_candidates(
    hu: np.ndarray,
    spacing: Sequence[float],
    lungs: LungSegmentation,
    *,
    closing_radius_mm: float = CLOSING_RADIUS_MM,
    dense_hu: float = DENSE_HU,
    opening_radius_mm: float = OPENING_RADIUS_MM,
    min_score: float = MIN_SCORE,
    max_candidates: int = MAX_CANDIDATES,
) -> LungCandidates:
    """Candidates in and at the border of ``lungs`` (same grid as ``hu``); see the module docs for the method."""
    spacing = tuple(float(s) for s in spacing)
    if not lungs.mask.any():
        return LungCandidates(labels=np.zeros(hu.shape, np.int32), heatmap=np.zeros(hu.shape, np.float32))
    margin = int(np.ceil(closing_radius_mm / min(spacing[1:]))) + 2
    crop = _bbox_crop(lungs.mask, margin)
    h, lab = hu[crop], lungs.labels[crop]
    region = np.zeros(h.shape, bool)
    for code in (RIGHT, LEFT):
        side = lab == code
        if side.any():
            region |= fill_holes_in_plane(closing_in_plane(side, closing_radius_mm, spacing))
    region &= lungs.body[crop]
    dense = opening_in_plane(region & (h > dense_hu), opening_radius_mm, spacing)
    comps, n = ndimage.label(dense)
    aerated = (lab > 0) & (h < -400)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    found: list[LungCandidate] = []
    ring_struct = np.zeros((1, 5, 5), bool)
    ring_struct[0] = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), 2)
    attached: tuple[np.ndarray, np.ndarray] | None = None
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        pad = (sl[0],) + tuple(slice(max(0, s.start - 3), s.stop + 3) for s in sl[1:])
        comp = comps[pad] == i
        n_vox = int(comp.sum())
        volume = n_vox * voxel_ml
        if volume < MIN_VOLUME_ML:
            continue
        ring = ndimage.binary_dilation(comp, ring_struct) & ~comp
        contact = float(aerated[pad][ring].mean()) if ring.any() else 0.0
        diameter = _equivalent_diameter(volume)
        if candidate_score(diameter, contact) < min_score:  # an upper bound: the blob part is smaller
            continue
        fraction, n_blob = _blob_share(h, comps, i, sl, spacing)
        blob_ml = n_blob * voxel_ml
        if fraction < MIN_BLOB_FRACTION and blob_ml < MASS_BLOB_ML:
            continue  # a vessel segment, bifurcation or crossing
        if blob_ml < MIN_BLOB_ML:
            if fraction < SMALL_BLOB_FRACTION:
                continue  # a small piece that is not round throughout: a vessel piece
            if attached is None:  # the dense tissue before the opening, labelled once (only if needed)
                attached = _component_sizes(region & (h > dense_hu))
            ids = np.unique(attached[0][pad][comp])
            if attached[1][ids[ids > 0]].sum() > SMALL_MAX_ATTACHED * n_vox:
                continue  # a stub the opening left of a larger structure (a vessel tree)
        score = candidate_score(_equivalent_diameter(blob_ml), contact)
        if score < min_score:
            continue
        inscribed = float(distance_in_plane(comp, spacing[1:]).max())
        extent = component_extent(comp, [pad[a].start + crop[a].start for a in range(3)])
        sides = lab[pad][ring]
        sides = sides[sides > 0]
        side = ""
        if sides.size:
            side = (
                "right" if np.bincount(sides, minlength=3)[RIGHT] >= np.bincount(sides, minlength=3)[LEFT] else "left"
            )
        found.append(
            LungCandidate(
                label=i,
                volume_ml=volume,
                diameter_mm=diameter,
                inscribed_mm=inscribed,
                contact=contact,
                mean_hu=float(h[pad][comp].mean()),
                centre=extent.centre,
                bbox=extent.bbox,
                slices=extent.slices,
                side=side,
                score=score,
                blob_fraction=fraction,
                blob_volume_ml=blob_ml,
            )
        )
    found.sort(key=lambda c: -c.score)
    found = found[:max_candidates]
    labels = np.zeros(hu.shape, np.int32)
    for rank, c in enumerate(found, start=1):
        labels[crop][comps == c.label] = rank
        c.label = rank
    aerated_full = lungs.mask & (hu < -400)
    for c in found:
        if c.diameter_mm >= TRACK_MIN_DIAMETER_MM:
            _track_mass(c, labels, hu, lungs.body, aerated_full, spacing, dense_hu, opening_radius_mm)
    heatmap = candidate_heatmap(labels, {c.label: c.score for c in found})
    full_region = np.zeros(hu.shape, bool)
    full_region[crop] = region
    return LungCandidates(found, labels, heatmap, full_region)
