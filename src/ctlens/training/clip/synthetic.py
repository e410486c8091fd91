"""A synthetic CT-RATE-like benchmark: chest-CT-like volumes with planted findings and templated reports.

Each volume (default ``32 x 64 x 64``) has a body with fat rim, two lungs, a heart, a spine and noise; five
findings are planted independently (probability ``prevalence``):

* **Lung nodule** -- 2-4 soft-tissue spheres (radius 4-6 voxels) in still-aerated lung (never hidden in fluid);
* **Pleural effusion** -- fluid filling the dependent (posterior) part of one or both lungs;
* **Emphysema** -- 10-14 confluent low-attenuation (-1000 HU) regions in the aerated (-720 HU) lung;
* **Cardiomegaly** -- the (contrast-enhanced, 150 HU) heart enlarged by 60-80 %;
* **Consolidation** -- a large soft-tissue (50 HU) region in the anterior part of one lung.

Reports mention each finding with a paraphrase (positive) or a negation ("No ...", "... is not seen"),
or omit an absent finding; sentence order is shuffled and neutral sentences are added. The templates
deliberately exclude the zero-shot prompts ("... is present." / "... is not present."), so a model must
generalise to them. Every one of these findings changes the grey-level histogram (a supervised histogram
classifier reaches mean AUROC 0.98, docs/clip3d.md); :mod:`ctlens.training.clip.synthetic_spatial` is the
harder benchmark. Values are stored as the HDF5 export does: uint8 of the HU window [-1000, 1000].

Example:
    >>> vols, labels, reports, names = make_synthetic_chest(4, seed=0)
    >>> vols.shape, vols.dtype, labels.shape, names[0]
    ((4, 32, 64, 64), dtype('uint8'), (4, 5), 'train_0_a_1')
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["SYNTHETIC_FINDINGS", "make_synthetic_chest", "synthetic_report", "write_synthetic_ct_rate"]

SYNTHETIC_FINDINGS = ("Lung nodule", "Pleural effusion", "Emphysema", "Cardiomegaly", "Consolidation")
"""The planted findings, named as the CT-RATE label columns."""

_PHRASES = {
    "Lung nodule": ("lung nodule", "pulmonary nodule", "nodular lesion in the lung"),
    "Pleural effusion": ("pleural effusion", "pleural fluid", "fluid in the pleural space"),
    "Emphysema": ("emphysema", "emphysematous changes", "centrilobular emphysema"),
    "Cardiomegaly": ("cardiomegaly", "enlarged heart", "cardiac enlargement"),
    "Consolidation": ("consolidation", "consolidated lung", "airspace consolidation"),
}
_POSITIVE = ("{x} is seen.", "There is {x}.", "{x} is noted.", "Findings are consistent with {x}.", "{x} is observed.")
_NEGATIVE = ("No {x}.", "There is no {x}.", "No evidence of {x}.", "{x} is not seen.", "{x} is not observed.")
_NEUTRAL = (
    "The trachea and main bronchi are patent.",
    "Bones are unremarkable.",
    "The thyroid is normal.",
    "Mediastinal structures are in place.",
    "Upper abdominal organs are unremarkable.",
)
_HU_LO, _HU_HI = -1000.0, 1000.0


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def synthetic_report(labels: Sequence[int], rng: np.random.Generator) -> tuple[str, str]:
    """``(findings text, impression text)`` for the 0/1 ``labels`` of :data:`SYNTHETIC_FINDINGS`.

    Example:
        >>> findings, impression = synthetic_report([0, 0, 0, 0, 0], np.random.default_rng(1))
        >>> impression
        'No acute abnormality.'
    """
    sentences = []
    positives = []
    for name, present in zip(SYNTHETIC_FINDINGS, labels, strict=True):
        phrase = str(rng.choice(_PHRASES[name]))
        if present:
            sentences.append(_cap(str(rng.choice(_POSITIVE)).format(x=phrase)))
            positives.append(phrase)
        elif rng.random() < 0.9:
            sentences.append(_cap(str(rng.choice(_NEGATIVE)).format(x=phrase)))
    sentences += [str(s) for s in rng.choice(_NEUTRAL, size=2, replace=False)]
    rng.shuffle(sentences)
    impression = _cap(", ".join(positives) + ".") if positives else "No acute abnormality."
    return " ".join(sentences), impression


def _ellipsoid(grid: tuple[np.ndarray, ...], centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def _random_voxels(mask: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` random voxel coordinates inside ``mask`` (none when it is empty)."""
    where = np.argwhere(mask)
    return [] if len(where) == 0 else list(where[rng.integers(0, len(where), size=k)].astype(np.float32))


def _one_volume(shape: tuple[int, int, int], labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d, h, w = shape
    z, y, x = np.meshgrid(
        np.arange(d, dtype=np.float32), np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
    )
    grid = (z, y, x)
    cz, cy, cx = d / 2 + rng.uniform(-1, 1), h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2)
    size = rng.uniform(0.9, 1.05)
    hu = np.full(shape, -1000.0, np.float32)
    body = _ellipsoid((y, x), (cy, cx), (0.36 * h * size, 0.46 * w * size)) & (np.abs(z - cz) < 0.48 * d)
    hu[body] = -100.0
    inner = _ellipsoid((y, x), (cy, cx), (0.32 * h * size, 0.42 * w * size)) & body
    hu[inner] = 40.0
    lungs = []
    for side in (-1, 1):
        lung = _ellipsoid(grid, (cz, cy - 0.02 * h, cx + side * 0.2 * w * size), (0.4 * d, 0.25 * h * size, 0.15 * w))
        lungs.append(lung & inner)
    lung_any = lungs[0] | lungs[1]
    hu[lung_any] = -720.0
    heart_scale = rng.uniform(1.6, 1.8) if labels[3] else rng.uniform(0.8, 0.95)
    heart = _ellipsoid(
        grid, (cz + 0.1 * d, cy + 0.1 * h, cx + 0.03 * w), np.array([0.16 * d, 0.12 * h, 0.1 * w]) * heart_scale
    )
    hu[heart & inner] = 150.0
    spine = _ellipsoid((y, x), (cy - 0.27 * h * size, cx), (0.05 * h, 0.05 * w)) & body
    hu[spine] = 700.0
    # fluid and solid findings first; emphysema and nodules then go where the lung is still aerated, so a
    # planted nodule is never hidden in an effusion (its label would be invisible)
    if labels[1]:  # effusion: fluid in the posterior (low y) part of one or both lungs
        level = cy - rng.uniform(0.05, 0.12) * h
        sides = [0, 1] if rng.random() < 0.5 else [int(rng.choice([0, 1]))]
        for side in sides:
            hu[lungs[side] & (y < level)] = 10.0
    if labels[4]:  # consolidation: a large soft-tissue region within one lung
        side = int(rng.choice([0, 1]))
        c = (cz + rng.uniform(-0.15, 0.15) * d, cy + rng.uniform(0.08, 0.15) * h, cx + (2 * side - 1) * 0.2 * w)
        region = _ellipsoid(grid, c, (rng.uniform(7, 10), rng.uniform(8, 11), rng.uniform(5, 7))) & lungs[side]
        hu[region] = 50.0
    aerated = lung_any & (hu < -500.0)
    if labels[2]:  # emphysema: confluent low-attenuation (-1000 HU) regions in the aerated lung
        for c in _random_voxels(aerated, int(rng.integers(10, 15)), rng):
            hu[_ellipsoid(grid, c, (rng.uniform(5, 8), rng.uniform(6, 9), rng.uniform(4, 6))) & aerated] = -1000.0
    if labels[0]:  # nodules: small soft-tissue spheres surrounded by aerated lung
        for c in _random_voxels(aerated & (np.abs(z - cz) < 0.3 * d), int(rng.integers(2, 5)), rng):
            r = rng.uniform(4.0, 6.0)
            hu[_ellipsoid(grid, c, (r, r * 1.2, r * 1.2)) & lung_any] = 60.0
    hu += rng.normal(0.0, 25.0, size=shape).astype(np.float32)
    scaled = (np.clip(hu, _HU_LO, _HU_HI) - _HU_LO) * (255.0 / (_HU_HI - _HU_LO))
    return np.rint(scaled).astype(np.uint8)


def make_synthetic_chest(
    n: int, seed: int = 0, shape: Sequence[int] = (32, 64, 64), prevalence: float = 0.4, scans_per_patient: int = 2
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]], list[str]]:
    """``(volumes uint8 [n, D, H, W], labels [n, 5], reports [(findings, impression)], names)``.

    Names follow CT-RATE (``train_<patient>_a_<recon>``); ``scans_per_patient`` consecutive volumes share a
    patient and its findings (re-scans with fresh noise and anatomy jitter).
    """
    n_findings = len(SYNTHETIC_FINDINGS)
    return _cohort(n, seed, shape, prevalence, scans_per_patient, n_findings, _one_volume, synthetic_report)


def _cohort(
    n: int,
    seed: int,
    shape: Sequence[int],
    prevalence: float,
    scans_per_patient: int,
    n_findings: int,
    volume: Callable[[tuple[int, int, int], np.ndarray, np.random.Generator], np.ndarray],
    report: Callable[[np.ndarray, np.random.Generator], tuple[str, str]],
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]], list[str]]:
    """Patients with findings drawn at ``prevalence``, ``scans_per_patient`` re-scans each, CT-RATE names."""
    rng = np.random.default_rng(seed)
    shape3 = tuple(int(s) for s in shape)
    volumes = np.empty((n, *shape3), np.uint8)
    labels = np.zeros((n, n_findings), np.int64)
    reports, names = [], []
    patient_labels = np.zeros(n_findings, np.int64)
    for i in range(n):
        patient, recon = divmod(i, scans_per_patient)
        if recon == 0:
            patient_labels = (rng.random(n_findings) < prevalence).astype(np.int64)
        labels[i] = patient_labels
        volumes[i] = volume(shape3, patient_labels, rng)  # type: ignore[arg-type]
        reports.append(report(patient_labels, rng))
        names.append(f"train_{patient}_a_{recon + 1}")
    return volumes, labels, reports, names


def write_synthetic_ct_rate(
    folder: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    shape: Sequence[int] = (32, 64, 64),
    prefix: str = "",
    kind: str = "planted",
) -> dict[str, Path]:
    """Write ``volumes.h5`` (HDF5-export layout), ``reports.csv`` and ``labels.csv`` (18 CT-RATE columns).

    ``kind="planted"``: this module's benchmark; ``"spatial"``: the harder one of
    :mod:`ctlens.training.clip.synthetic_spatial` (its findings outside CT-RATE's 18 get their own columns).
    Unplanted CT-RATE findings are left empty (NaN) in the labels CSV; about 10 % of impressions are
    ``NaN``, as in real exports. ``prefix`` goes before every name (``held_`` -> ``held_train_0_a_1``,
    patient ``held_train_0``), keeping the patients of differently seeded sets apart.

    Example:
        >>> import tempfile
        >>> paths = write_synthetic_ct_rate(tempfile.mkdtemp(), 2, shape=(4, 16, 16))
        >>> sorted(paths)
        ['h5', 'labels', 'reports']
    """
    import h5py

    from ctlens.data.ct_report import CT_RATE_FINDINGS

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "planted":
        volumes, labels, reports, names = make_synthetic_chest(n, seed=seed, shape=shape)
        planted: Sequence[str] = SYNTHETIC_FINDINGS
    elif kind == "spatial":
        from ctlens.training.clip.synthetic_spatial import SPATIAL_FINDINGS, make_spatial_chest

        volumes, labels, reports, names = make_spatial_chest(n, seed=seed, shape=shape)
        planted = SPATIAL_FINDINGS
    else:
        raise ValueError(f"kind must be 'planted' or 'spatial', got {kind!r}")
    names = [f"{prefix}{name}" for name in names]
    rng = np.random.default_rng(seed + 1)
    paths = {"h5": out / "volumes.h5", "reports": out / "reports.csv", "labels": out / "labels.csv"}
    with h5py.File(paths["h5"], "w") as h5:
        h5.attrs.update({"format": "ctlens-clip-volumes", "format_version": 1, "hu_clip": (_HU_LO, _HU_HI)})
        h5.attrs["value_to_hu"] = ((_HU_HI - _HU_LO) / 255.0, _HU_LO)
        for name, vol in zip(names, volumes, strict=True):
            h5.create_dataset(name, data=vol)
    with open(paths["reports"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["VolumeName", "Findings_EN", "Impressions_EN"])
        for name, (findings, impression) in zip(names, reports, strict=True):
            writer.writerow([f"{name}.nii.gz", findings, "NaN" if rng.random() < 0.1 else impression])
    column = {f: i for i, f in enumerate(planted)}
    header = [*CT_RATE_FINDINGS, *[f for f in planted if f not in CT_RATE_FINDINGS]]
    with open(paths["labels"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["VolumeName", *header])
        for name, lab in zip(names, labels, strict=True):
            writer.writerow([f"{name}.nii.gz", *[int(lab[column[f]]) if f in column else "" for f in header]])
    return paths
