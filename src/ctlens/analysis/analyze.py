"""`analyze`: one call from a CT volume (or a path) to :class:`~ctlens.analysis.findings.Findings`.

Dispatch:

* one-slice images, and volumes that are not on the HU scale (MR, screenshots): the 2-D path,
  :func:`~ctlens.analysis.image2d.analyze_image2d`, with a warning saying why;
* CT: the analysis grid (:class:`~ctlens.analysis.grid.AnalysisGrid`), body mask, lungs, body region;
  then ``head`` -> brain mask and hyperdense candidates (:mod:`ctlens.analysis.head`); any volume with
  at least ``MIN_CHEST_LUNG_ML`` of lung (chest, or an abdomen CT with lung bases) -> lung volumes,
  emphysema index and nodule / mass candidates (:mod:`ctlens.analysis.lungs`,
  :mod:`ctlens.analysis.emphysema`, :mod:`ctlens.analysis.nodules`); other regions get the region and a
  warning that no detector exists for them yet.

Example:
    >>> from ctlens.analysis.phantoms import chest_phantom
    >>> vol, truth = chest_phantom(nodule_radius_mm=9.0)
    >>> f = analyze(vol)
    >>> f.region, f.candidates[0].side, f.heatmap.shape == vol.shape
    ('chest', 'left', True)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ctlens.analysis.body_region import body_region
from ctlens.analysis.emphysema import kernel_normalized_density
from ctlens.analysis.findings import Candidate, Findings
from ctlens.analysis.grid import AnalysisGrid
from ctlens.analysis.head import analyze_head
from ctlens.analysis.image2d import analyze_image2d
from ctlens.analysis.lungs import LEFT, RIGHT, segment_lungs
from ctlens.analysis.nodules import (
    MASS_BLOB_ML,
    MIN_BLOB_FRACTION,
    MIN_BLOB_ML,
    SMALL_BLOB_FRACTION,
    SMALL_MAX_ATTACHED,
    detect_lung_candidates,
)
from ctlens.analysis.vesselness import BLOB_RATIO, SCALES_MM
from ctlens.core.errors import UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.preprocess.display import to_display
from ctlens.preprocess.masks import foreground_mask
from ctlens.preprocess.mode import detect_mode

__all__ = ["MASS_DIAMETER_MM", "MIN_CHEST_LUNG_ML", "analyze", "load_for_analysis"]

MIN_CHEST_LUNG_ML = 50.0
MASS_DIAMETER_MM = 30.0
"""Lesions above 3 cm are masses, below nodules (Fleischner Society glossary, Hansell et al., Radiology 2008)."""


def load_for_analysis(path: str | Path) -> Volume:
    """Load a path as :func:`ctlens.load` does; DICOM with ``uneven="resample"`` (analysis needs even slices)."""
    from ctlens.io import load
    from ctlens.io.loader import file_kind

    return load(path, uneven="resample") if file_kind(path) == "dicom" else load(path)


def _to_input_box(grid: AnalysisGrid, box: tuple[int, ...], axes: tuple[int, ...]) -> list[int]:
    """Inclusive working-grid bounds -> inclusive input-grid bounds along ``axes``."""
    half = len(box) // 2
    lo = [box[i] * grid.factors[a] for i, a in enumerate(axes)]
    hi = [min(grid.input_shape[a] - 1, (box[half + i] + 1) * grid.factors[a] - 1) for i, a in enumerate(axes)]
    return lo + hi


def _candidate(volume: Volume, grid: AnalysisGrid, *, centre, bbox, slices, **values) -> Candidate:
    centre_in = grid.to_input_index(centre)
    box = _to_input_box(grid, bbox, (0, 1, 2))
    slice_boxes = {}
    for z, b in slices.items():
        in_box = _to_input_box(grid, b, (1, 2))
        for zi in range(z * grid.factors[0], min(grid.input_shape[0], (z + 1) * grid.factors[0])):
            slice_boxes[zi] = tuple(in_box)
    return Candidate(
        centre_voxel=tuple(round(c, 2) for c in centre_in),
        centre_mm=tuple(round(float(c), 2) for c in volume.world(centre_in)),
        slice_range=(box[0], box[3]),
        bbox=tuple(box),
        slice_boxes=slice_boxes,
        **values,
    )


def _lung_slabs(grid: AnalysisGrid, lung: np.ndarray):
    """The ``lung_mask`` callable of :func:`kernel_normalized_density` for a working-grid lung mask: the
    input-grid mask of the lungs' box in slices ``z0:z1`` only (bounded memory, no full-size copy)."""
    (fz, fy, fx), (_, ny, nx) = grid.factors, grid.input_shape

    def slab(z0: int, z1: int, reach: int):
        part = lung[z0 // fz : (z1 - 1) // fz + 1]
        ys, xs = np.nonzero(part.any(axis=(0, 2)))[0], np.nonzero(part.any(axis=(0, 1)))[0]
        if ys.size == 0:
            return None
        ys = slice(max(0, int(ys[0]) * fy - reach), min(ny, (int(ys[-1]) + 1) * fy + reach))
        xs = slice(max(0, int(xs[0]) * fx - reach), min(nx, (int(xs[-1]) + 1) * fx + reach))
        return (ys, xs), grid.upsample_box(lung, (slice(z0, z1), ys, xs))

    return slab


def _chest(volume: Volume, grid: AnalysisGrid, hu_g: np.ndarray, lungs, findings: Findings) -> None:
    t = time.perf_counter()
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    kernel = (volume.meta or {}).get("kernel")
    density, correction = kernel_normalized_density(
        volume.array, _lung_slabs(grid, lungs.labels > 0), volume.spacing, kernel
    )
    sides = grid.input_counts(lungs.labels, 3)
    right, left = float(sides[RIGHT]) * voxel_ml, float(sides[LEFT]) * voxel_ml
    findings.measurements.update(
        {
            "lung_volume_ml": round(left + right, 1),
            "right_lung_volume_ml": round(right, 1),
            "left_lung_volume_ml": round(left, 1),
            **density,
        }
    )
    findings.parameters["laa_correction"] = correction
    if correction["filter_sigma_mm"]:
        findings.warnings.append(
            f"kernel {correction['kernel'] or 'unknown'} ({correction['kernel_class']}), image noise "
            f"{correction['noise_hu']} HU: LAA-950 after an in-plane Gaussian of {correction['filter_sigma_mm']} mm "
            f"(noise {correction['noise_after_hu']} HU, target {correction['target_noise_hu']} HU); "
            f"unfiltered {density['laa950_raw_percent']} %"
        )
    findings.timings["density_s"] = time.perf_counter() - t
    t = time.perf_counter()
    found = detect_lung_candidates(hu_g, grid.spacing, lungs)
    findings.timings["candidates_s"] = time.perf_counter() - t
    for c in found.components:
        findings.candidates.append(
            _candidate(
                volume,
                grid,
                centre=c.centre,
                bbox=c.bbox,
                slices=c.slices,
                diameter_mm=round(c.diameter_mm, 1),
                volume_ml=round(c.volume_ml, 2),
                mean_hu=round(c.mean_hu, 1),
                side=c.side,
                score=round(c.score, 4),
                kind="mass" if c.diameter_mm > MASS_DIAMETER_MM else "nodule",
                features={
                    "lung_contact": round(c.contact, 3),
                    "inscribed_radius_mm": round(c.inscribed_mm, 1),
                    "tracked_slices": c.tracked_slices,
                    "blob_fraction": round(c.blob_fraction, 3),
                    "blob_volume_ml": round(c.blob_volume_ml, 2),
                },
            )
        )
    findings.heatmap = grid.upsample(found.heatmap.astype(np.float16))  # half the memory; values are scores
    findings.lung_labels = grid.upsample(lungs.labels.astype(np.uint8))
    findings.roi_mask = findings.lung_labels > 0
    findings.method = (
        "lungs: threshold + airway tracing; LAA-950 after kernel noise normalisation; candidates: closing, "
        "opening, Hessian blob/tube vessel suppression, lung contact"
    )
    findings.parameters.update(
        {
            "lung_threshold_hu": -400.0,
            "laa_threshold_hu": -950.0,
            "closing_radius_mm": 30.0,
            "dense_hu": -300.0,
            "opening_radius_mm": 4.0,
            "min_score": 0.3,
            "score": "(1 - exp(-d_blob/15mm)) * clip((lung_contact - 0.15)/0.45, 0, 1)",
            "vessel_suppression": {
                "hessian_scales_mm": list(SCALES_MM),
                "blob_ratio": BLOB_RATIO,
                "min_blob_fraction": MIN_BLOB_FRACTION,
                "mass_blob_ml": MASS_BLOB_ML,
                "min_blob_ml": MIN_BLOB_ML,
                "small_blob_fraction": SMALL_BLOB_FRACTION,
                "small_max_attached": SMALL_MAX_ATTACHED,
            },
        }
    )


def _head(volume: Volume, grid: AnalysisGrid, hu_g: np.ndarray, findings: Findings) -> None:
    t = time.perf_counter()
    res = analyze_head(hu_g, grid.spacing)
    findings.timings["head_s"] = time.perf_counter() - t
    findings.measurements.update(res.measurements)
    findings.measurements["brain_volume_ml"] = round(
        float(np.count_nonzero(res.brain)) * grid.voxel_ml, 1
    )  # working grid
    findings.warnings.extend(res.warnings)
    for c in res.components:
        findings.candidates.append(
            _candidate(
                volume,
                grid,
                centre=c["centre"],
                bbox=c["bbox"],
                slices=c["slices"],
                diameter_mm=round(float((6.0 * c["volume_ml"] * 1000.0 / np.pi) ** (1 / 3)), 1),
                volume_ml=round(c["volume_ml"], 2),
                mean_hu=round(c["mean_hu"], 1),
                score=round(c["score"], 4),
                kind="hyperdense",
            )
        )
    findings.heatmap = grid.upsample(res.heatmap)
    findings.roi_mask = grid.upsample(res.brain)
    findings.method = "head: skull ring -> brain mask; hyperdense 50-90 HU components away from bone"
    findings.parameters.update(
        {"hyperdense_hu": [50.0, 90.0], "bone_margin_mm": 5.0, "brain_margin_mm": 6.0, "report_score": 0.5}
    )


def analyze(volume: Volume | str | Path, *, region: str | None = None) -> Findings:
    """Findings for a CT volume (or a path to one); ``region`` overrides the detected body region.

    Non-CT and one-slice inputs go to the 2-D path; see the module docs.
    """
    t0 = time.perf_counter()
    if isinstance(volume, str | Path):
        volume = load_for_analysis(volume)
    if not isinstance(volume, Volume):
        raise UnsupportedFormatError(f"analyze needs a Volume or a path, got {type(volume).__name__}")
    volume = to_display(volume)  # boxes, slice indices and left/right in display space, whatever the storage order
    arr = volume.array
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
        raise UnsupportedFormatError(f"cannot analyse an empty or non-numeric volume of shape {arr.shape}")
    mode, reason = detect_mode(volume)
    if volume.shape[0] == 1 or mode != "ct" or region == "image2d":
        findings = analyze_image2d(volume)
        why = "a single 2-D image" if volume.shape[0] == 1 else f"not CT ({reason})"
        if mode == "ct" and volume.shape[0] > 1:
            why = "region='image2d' was asked for"
        findings.warnings.insert(0, f"{why}: detail-based 2-D ROI only, no quantitative CT analysis")
        findings.timings["total_s"] = time.perf_counter() - t0
        return findings
    findings = Findings(input_shape=tuple(int(s) for s in volume.shape))
    grid = AnalysisGrid.for_spacing(volume.spacing, volume.shape)
    t = time.perf_counter()
    hu_g = grid.downsample(arr)
    body = foreground_mask(hu_g, "ct")
    findings.timings["grid_body_s"] = time.perf_counter() - t
    t = time.perf_counter()
    lungs = segment_lungs(hu_g, grid.spacing, volume.direction, body=body)
    findings.timings["lungs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    br = body_region(volume, hu=hu_g, body=body, lung=lungs.mask, spacing=grid.spacing)
    findings.timings["region_s"] = time.perf_counter() - t
    findings.region = region or br.region
    findings.measurements["region_coverage"] = br.coverage
    findings.warnings.extend(br.warnings)
    findings.parameters["analysis_grid_mm"] = [round(s, 3) for s in grid.spacing]
    lung_ml = lungs.volume_ml()
    if findings.region == "head":
        _head(volume, grid, hu_g, findings)
    elif findings.region == "chest" or lung_ml >= MIN_CHEST_LUNG_ML:
        findings.warnings.extend(lungs.warnings)
        _chest(volume, grid, hu_g, lungs, findings)
        if findings.region != "chest":
            findings.warnings.append(
                f"region is {findings.region} but {lung_ml:.0f} mL of lung is present: lungs analysed"
            )
    else:
        findings.method = "body region only"
        findings.warnings.append(f"no detector for region '{findings.region}' yet: body region and warnings only")
        findings.roi_mask = grid.upsample(body)
    findings.timings["total_s"] = time.perf_counter() - t0
    return findings
