"""A harder synthetic CLIP benchmark: findings a grey-level histogram cannot see (laterality, count, location).

The first benchmark (:mod:`ctlens.training.clip.synthetic`) plants findings that change how many voxels
have which value, so a logistic regression on 32-bin histograms reaches AUROC ~0.94 (issue #22). Here
three of five findings leave the histogram unchanged in distribution -- every volume holds the same
material, only *where* or *how split up* differs:

* **Right lung nodule** (laterality): every volume has nodules, all in one lung; label 1 = the right lung
  (lower column index, as displayed radiologically: patient right on the viewer's left);
* **Multiple nodules** (count): three nodules, or one nodule of the same total volume (radius x 3^(1/3));
* **Upper zone consolidation** (location): every volume has one consolidation; label 1 = cranial half
  (lower slice index);
* **Pleural effusion** and **Cardiomegaly**: intensity/size findings as before (histogram-visible
  controls).

Nodules are placed where a ball of their radius lies wholly in aerated lung, so no nodule is clipped by
the lung edge (clipping would make count or side visible in the histogram). Reports describe every volume's
nodules (side, number) and consolidation (zone, side) with paraphrases; the zero-shot prompt wording
("... is present." / "... is not present.") never occurs. Names ``<prefix>train_<patient>_a_<recon>``, two
re-scans per patient sharing findings; values uint8 of [-1000, 1000] HU as the HDF5 export.

Example:
    >>> vols, labels, reports, names = make_spatial_chest(2, seed=0, shape=(16, 48, 48))
    >>> vols.shape, labels.shape, SPATIAL_FINDINGS[0]
    ((2, 16, 48, 48), (2, 5), 'Right lung nodule')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctlens.training.clip.synthetic import _HU_HI, _HU_LO, _NEUTRAL, _cap, _cohort, _ellipsoid

__all__ = ["SPATIAL_FINDINGS", "make_spatial_chest", "spatial_report"]

SPATIAL_FINDINGS = (
    "Right lung nodule",
    "Multiple nodules",
    "Upper zone consolidation",
    "Pleural effusion",
    "Cardiomegaly",
)
"""The planted findings; the first three are spatial (histogram-invariant)."""
SPATIAL_ONLY = SPATIAL_FINDINGS[:3]

_NODULE_ONE = ("a solitary nodule", "a single pulmonary nodule", "one nodule")
_NODULE_MANY = ("three nodules", "multiple nodules", "several pulmonary nodules")
_SIDE = {1: ("right", "right-sided"), 0: ("left", "left-sided")}
_ZONE = {1: ("upper zone", "upper lobe", "apical region"), 0: ("lower zone", "lower lobe", "basal region")}
_EFFUSION = (("pleural effusion", "pleural fluid"), ("No pleural effusion.", "The pleural spaces are clear."))
_HEART = (("cardiomegaly", "an enlarged heart"), ("Heart size is normal.", "No cardiomegaly."))


def spatial_report(labels: Sequence[int], rng: np.random.Generator) -> tuple[str, str]:
    """``(findings text, impression)`` describing side and number of nodules and the consolidation's zone.

    Example:
        >>> f, i = spatial_report([1, 0, 1, 0, 0], np.random.default_rng(0))
        >>> "right" in f and "upper" in f or "apical" in f
        True
    """
    right, many, upper, effusion, heart = (int(v) for v in labels)
    side = str(rng.choice(_SIDE[right]))
    nodules = str(rng.choice(_NODULE_MANY if many else _NODULE_ONE))
    sentences = [
        _cap(str(rng.choice((f"{nodules} in the {side.split('-')[0]} lung.", f"There are {nodules}, {side}.")))),
        _cap(
            f"{rng.choice(('consolidation', 'airspace consolidation'))} in the {rng.choice(_ZONE[upper])} "
            f"of the {rng.choice(('right', 'left'))} lung."
        ),
    ]
    sentences.append(_cap(f"There is {rng.choice(_EFFUSION[0])}.") if effusion else str(rng.choice(_EFFUSION[1])))
    sentences.append(_cap(f"Findings of {rng.choice(_HEART[0])}.") if heart else str(rng.choice(_HEART[1])))
    sentences += [str(s) for s in rng.choice(_NEUTRAL, size=2, replace=False)]
    rng.shuffle(sentences)
    zone = _ZONE[upper][0]
    impression = _cap(f"{'multiple' if many else 'solitary'} {_SIDE[right][0]} lung nodule(s); {zone} consolidation.")
    return " ".join(sentences), impression


def _ball_centres(room: np.ndarray, radius: float, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` voxels whose ball of ``radius`` lies inside ``room`` (distance transform), apart from each other."""
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(room, sampling=(1.0, 1.0 / 1.2, 1.0 / 1.2))
    where = np.argwhere(depth > radius + 0.5)
    chosen: list[np.ndarray] = []
    for index in rng.permutation(len(where)):
        c = where[index].astype(np.float64)
        if all(np.linalg.norm((c - o) * (1.0, 1 / 1.2, 1 / 1.2)) > 2 * radius + 1 for o in chosen):
            chosen.append(c)
        if len(chosen) == k:
            break
    return chosen


def _spatial_volume(shape: tuple[int, int, int], labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d, h, w = shape
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    grid = (z, y, x)
    cz, cy, cx = d / 2 + rng.uniform(-0.5, 0.5), h / 2 + rng.uniform(-1, 1), w / 2 + rng.uniform(-1, 1)
    hu = np.full(shape, -1000.0, np.float32)
    body = _ellipsoid((y, x), (cy, cx), (0.36 * h, 0.46 * w)) & (np.abs(z - cz) < 0.48 * d)
    hu[body] = -100.0
    inner = _ellipsoid((y, x), (cy, cx), (0.32 * h, 0.42 * w)) & body
    hu[inner] = 40.0
    lungs = [_ellipsoid(grid, (cz, cy, cx + s * 0.2 * w), (0.4 * d, 0.25 * h, 0.15 * w)) & inner for s in (-1, 1)]
    hu[lungs[0] | lungs[1]] = -720.0
    right, many, upper, effusion, heart = (int(v) for v in labels)
    scale = rng.uniform(1.5, 1.7) if heart else rng.uniform(0.8, 0.95)
    heart_mask = _ellipsoid(grid, (cz + 0.1 * d, cy + 0.15 * h, cx), np.array([0.14 * d, 0.1 * h, 0.07 * w]) * scale)
    hu[heart_mask & inner] = 150.0
    hu[_ellipsoid((y, x), (cy - 0.27 * h, cx), (0.05 * h, 0.05 * w)) & body] = 700.0
    if effusion:
        level = cy - rng.uniform(0.1, 0.16) * h
        for side in [0, 1] if rng.random() < 0.5 else [int(rng.integers(2))]:
            hu[lungs[side] & (y < level)] = 10.0
    # consolidation: same size either way, in the cranial (upper) or caudal half of a random lung
    side = int(rng.integers(2))
    zc = cz + (-1 if upper else 1) * rng.uniform(0.12, 0.2) * d
    region = _ellipsoid(grid, (zc, cy + 0.05 * h, cx + (2 * side - 1) * 0.2 * w), (0.1 * d, 0.09 * h, 0.07 * w))
    hu[region & lungs[side] & (hu < -500)] = 50.0
    # nodules: one or three of the same total volume, all in the right (index 0, low x) or left lung
    big = rng.uniform(0.075, 0.09) * w
    radius, count = (big / 3 ** (1 / 3), 3) if many else (big, 1)
    room = lungs[0 if right else 1] & (hu < -500)
    for c in _ball_centres(room, radius, count, rng):
        hu[_ellipsoid(grid, c, (radius, radius * 1.2, radius * 1.2))] = 60.0
    hu += rng.normal(0.0, 25.0, size=shape).astype(np.float32)
    return np.rint((np.clip(hu, _HU_LO, _HU_HI) - _HU_LO) * (255.0 / (_HU_HI - _HU_LO))).astype(np.uint8)


def make_spatial_chest(
    n: int, seed: int = 0, shape: Sequence[int] = (32, 64, 64), prevalence: float = 0.5, scans_per_patient: int = 2
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]], list[str]]:
    """``(volumes uint8 [n, D, H, W], labels [n, 5], reports, names)`` as :func:`make_synthetic_chest`."""
    n_findings = len(SPATIAL_FINDINGS)
    return _cohort(n, seed, shape, prevalence, scans_per_patient, n_findings, _spatial_volume, spatial_report)
