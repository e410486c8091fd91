"""Acceptance on the real CT series of ../shared/data (skipped, saying why, when the folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest

import ctlens
from ctlens.analysis import analyze, segment_lungs
from ctlens.analysis.head import REPORT_SCORE
from ctlens.io.annotations import voc_annotations_for_volume

pytestmark = pytest.mark.shared_data

MAX_FALSE_CANDIDATES = 3


def _iou(a, b) -> float:
    """IoU of two inclusive in-plane boxes (y0, x0, y1, x1)."""
    y0, x0, y1, x1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, y1 - y0 + 1) * max(0, x1 - x0 + 1)
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.parametrize("series", ["series_B40f_8mm", "series_B70f_8mm"])
def test_adenocarcinoma_is_candidate_one(series, chest_series, shared):
    vol = chest_series[series]
    findings = analyze(vol)  # the detector never sees the annotations
    boxes = voc_annotations_for_volume(vol, shared / "lung_pet_ct_dx" / "annotations" / "Lung_Dx-A0002")
    assert boxes and findings.region == "chest"
    hits = []
    for c in findings.candidates:
        hit = [
            b
            for b in boxes
            if b.slice_index in c.slice_boxes
            and _iou(c.slice_boxes[b.slice_index], (b.ymin, b.xmin, b.ymax, b.xmax)) >= 0.3
        ]
        hits.append(len(hit))
    found = [rank for rank, n in enumerate(hits, start=1) if 2 * n >= len(boxes)]
    false = sum(1 for n in hits if n == 0)
    print(f"{series}: hits per candidate {hits} of {len(boxes)} annotated slices; false candidates {false}")
    assert found and found[0] == 1, f"tumour is not candidate 1: hits {hits}"
    assert false <= MAX_FALSE_CANDIDATES
    for c in findings.candidates[1:]:  # no hilar vessel: every other candidate must be blob-like
        assert c.features["blob_fraction"] >= 0.2 or c.features["blob_volume_ml"] >= 4.0
    assert findings.candidates[found[0] - 1].side == "right"
    m = findings.measurements
    assert 1500 < m["lung_volume_ml"] < 8000 and 0.0 <= m["laa950_percent"] < 10.0


def test_laa950_agrees_between_kernels(chest_series):
    f = {name: analyze(vol) for name, vol in chest_series.items()}
    soft, sharp = f["series_B40f_8mm"], f["series_B70f_8mm"]
    laa = {k: v.measurements["laa950_percent"] for k, v in f.items()}
    raw = {k: v.measurements["laa950_raw_percent"] for k, v in f.items()}
    print(f"LAA-950 normalised {laa}, raw {raw}")
    assert abs(laa["series_B40f_8mm"] - laa["series_B70f_8mm"]) <= 2.0
    assert sharp.parameters["laa_correction"]["kernel"] == "B70f"
    assert sharp.parameters["laa_correction"]["filter_sigma_mm"] > 0
    assert any("B70f" in w and "LAA-950" in w for w in sharp.warnings)
    assert soft.parameters["laa_correction"]["kernel"] == "B40f"


def test_lung_dice_on_totalsegmentator(shared):
    folder = shared / "totalsegmentator_example"
    ct = ctlens.load(folder / "ct_3mm.nii.gz")
    seg = ctlens.load(folder / "seg_3mm.nii.gz")
    # seg_3mm.nii.gz has 30 slices and the same origin as the 112-slice CT, so its affine places it on the
    # CT's 30 most *inferior* slices (pelvis). Its content, however, is the lung bases, liver and spleen of
    # the CT's 30 most *superior* slices: CT slice 82 + k matches label slice k (checked by the Dice of the
    # CT's aerated lung against labels 10-14 at every offset: 0.49 at 82, < 0.4 elsewhere; and visually).
    offset = ct.shape[0] - seg.shape[0]
    reference = (seg.array >= 10) & (seg.array <= 14)
    lungs = segment_lungs(ct.array.astype(np.float32), ct.spacing, ct.direction)
    ours = lungs.mask[offset:]
    covered = reference.any(axis=(1, 2))
    a, b = ours[covered], reference[covered]
    dice = 2.0 * (a & b).sum() / (a.sum() + b.sum())
    print(f"lung Dice on the {covered.sum()} labelled slices: {dice:.3f}")
    assert dice >= 0.9
    left_ref = (seg.array == 10) | (seg.array == 11)
    assert (lungs.labels[offset:][left_ref] == 2).mean() > 0.9
    assert not lungs.mask[:offset][: offset // 2].any()  # nothing in the pelvis
    findings = analyze(ct)  # abdomen / pelvis CT with lung bases: region abdomen, lungs still measured
    assert findings.region == "abdomen" and findings.measurements["region_coverage"]["pelvis"] > 0.2
    assert any("lung is present" in w for w in findings.warnings)
    assert findings.measurements["lung_volume_ml"] == pytest.approx(reference.sum() * 0.027, rel=0.1)


def test_head_ct_recognised_with_brain_and_no_bleed(shared):
    vol = ctlens.load(shared / "dcm_qa_ct_ge" / "dicom", uneven="resample")
    f = analyze(vol)
    assert f.region == "head"
    assert f.roi_mask is not None and f.roi_mask.shape == vol.shape
    assert 900 < f.measurements["brain_volume_ml"] < 1800
    assert all(c.score < REPORT_SCORE for c in f.candidates) and f.candidates == []
    assert f.measurements["max_hyperdense_score"] < REPORT_SCORE


def test_mr_volume_takes_the_2d_path(shared):
    f = analyze(shared / "totalsegmentator_example" / "mr_3mm.nii.gz")
    assert f.region == "image2d" and "not CT" in f.warnings[0]
    assert f.heatmap is not None and f.heatmap.shape == f.roi_mask.shape
    assert 0.0 <= f.heatmap.min() and f.heatmap.max() <= 1.0
