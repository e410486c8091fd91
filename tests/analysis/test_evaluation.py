"""The analysis evaluation harness: metrics on synthetic cases with known answers, annotations in any axis order."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.analysis import chest_phantom
from ctlens.analysis.eval_annotations import (
    Lesion,
    csv_rows_for_series,
    mask_lesions,
    read_coordinate_csv,
    sphere_lesions,
    voc_lesions,
)
from ctlens.analysis.evaluation import (
    SeriesResult,
    box_iou,
    dev_reason,
    froc,
    mean_slice_iou,
    run_evaluation,
    score_series,
)
from ctlens.analysis.findings import Candidate
from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.io import save
from ctlens.io.uid_hash import hash_uid
from ctlens.preprocess.display import display_array, to_display
from ctlens.preprocess.orientation import reorient

AXIAL_ORDERS = ("LPS", "RPS", "LAS", "RAS", "PLS", "ARS", "LPI", "RAI")
"""Storage orders whose slices stay axial (array axis 0 along S or I), rows and columns in any order and sense."""


def test_box_iou_known_values():
    assert box_iou((0, 0, 0, 1, 1, 1), (0, 0, 0, 1, 1, 1)) == 1.0
    assert box_iou((0, 0, 0, 1, 1, 1), (2, 2, 2, 3, 3, 3)) == 0.0
    assert box_iou((0, 0, 0, 1, 1, 1), (1, 1, 1, 2, 2, 2)) == pytest.approx(1 / 15)  # 1 voxel of 8 + 8 - 1
    assert box_iou((0, 0, 3, 3), (2, 2, 5, 5)) == pytest.approx(4 / 28)
    assert mean_slice_iou({1: (0, 0, 3, 3), 2: (0, 0, 1, 3)}, {1: (0, 0, 3, 3), 2: (0, 0, 3, 3), 3: (0, 0, 3, 3)}) == (
        pytest.approx((1.0 + 0.5 + 0.0) / 3)
    )


def test_froc_hand_computed():
    scans = [
        ([0.9, 0.8, 0.6, 0.5], [[0], [], [1], [0]], 2),  # lesion 0 hit twice: the second is neither TP nor FP
        ([0.85, 0.7, 0.3], [[], [], [0]], 1),
        ([0.75], [[]], 0),  # a scan without lesions still counts in the denominator
    ]
    out = froc(scans, (0.5, 1.0, 2.0, 4.0))
    # pooled: .9 TP | .85 FP | .8 FP | .75 FP | .7 FP | .6 TP | .5 dup | .3 TP -> 4 FP over 3 scans at the end
    assert out["sensitivity"] == {
        0.5: pytest.approx(1 / 3, abs=1e-4),
        1.0: pytest.approx(1 / 3, abs=1e-4),
        2.0: 1.0,
        4.0: 1.0,
    }
    assert out["curve_ends_at"] == pytest.approx(4 / 3, abs=1e-4) and out["false_candidates"] == 4
    assert out["lesions"] == 3 and out["scans"] == 3
    assert out["curve"][-1] == (pytest.approx(1.3333), 1.0)


def test_froc_ties_enter_together_and_no_lesions():
    tie = froc([([0.5, 0.5], [[], [0]], 1)], (0.5, 1.0))  # a tie cannot put the hit before the false candidate
    assert tie["sensitivity"] == {0.5: 0.0, 1.0: 1.0}
    assert froc([([0.4], [[]], 0)], (1.0,))["sensitivity"] == {1.0: None}
    assert froc([], (1.0,))["sensitivity"] == {1.0: None}


def _cand(centre, score, bbox=(0, 0, 0, 0, 0, 0), boxes=None) -> Candidate:
    return Candidate(centre_voxel=centre, centre_mm=centre, score=score, bbox=bbox, slice_boxes=boxes or {})


def test_ranks_iou_and_false_candidates():
    a = Lesion("a", "voc", (4, 10, 10, 6, 20, 20), {z: (10, 10, 20, 20) for z in (4, 5, 6)}, (0, 0, 0), 10.0)
    b = Lesion("b", "voc", (20, 30, 30, 22, 34, 34), {21: (30, 30, 34, 34)}, (0, 0, 0), 5.0)
    missed = Lesion("c", "voc", (40, 0, 0, 41, 3, 3), {40: (0, 0, 3, 3)}, (0, 0, 0), 3.0)
    cands = [
        _cand((50.0, 50.0, 50.0), 0.9),  # false
        _cand((21.0, 32.0, 32.0), 0.8, (20, 30, 30, 22, 34, 34), {21: (30, 30, 34, 34)}),  # b exactly
        _cand((5.0, 15.0, 15.0), 0.7, (4, 10, 10, 6, 20, 25), {5: (10, 10, 20, 20)}),  # a, wider box, one slice
        _cand((6.4, 20.4, 10.0), 0.2),  # a again, on its border (half a voxel counts)
    ]
    r = score_series(SeriesResult("s", "s"), cands, [a, b, missed])
    assert r.hits == [[], [1], [0], [0]] and r.false_candidates == 1
    ranks = {les.name: les.rank for les in r.lesions}
    assert ranks == {"a": 3, "b": 2, "c": None}
    la, lb = r.lesions[0], r.lesions[1]
    assert lb.iou_3d == 1.0 and lb.iou_2d_mean == 1.0 and lb.score == 0.8
    assert la.iou_3d == pytest.approx(round(3 * 11 * 11 / (3 * 11 * 16), 3)) and la.iou_2d_mean == pytest.approx(0.333)


def _nodule_case(order: str):
    """A chest phantom with a nodule, stored in ``order``; truth = the nodule's box on the display grid."""
    vol, truth = chest_phantom(nodule_radius_mm=9.0)
    grid = np.indices(vol.shape).astype(float)
    dist = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, truth["nodule_voxel"], vol.spacing, strict=True)))
    nodule = ((dist <= 10.0) & (vol.array == 40)).astype(np.int16)
    stored = reorient(vol, order)
    mask = reorient(vol.with_array(nodule), order)
    zs, ys, xs = np.nonzero(display_array(mask))
    box = (zs.min(), ys.min(), xs.min(), zs.max(), ys.max(), xs.max())
    return stored, mask, tuple(int(v) for v in box)


@pytest.mark.parametrize("order", AXIAL_ORDERS)
def test_voc_boxes_map_to_the_display_grid_in_every_axis_order(order, tmp_path):
    stored, mask, truth = _nodule_case(order)
    uids = [f"1.2.826.0.1.{k}" for k in range(stored.shape[0])]
    stored.meta["sop_uids"] = [hash_uid(u) for u in uids]
    index = {}
    for k in range(stored.shape[0]):
        rows, cols = np.nonzero(mask.array[k])
        if rows.size:  # VOC: x = column, y = row of the stored slice
            path = tmp_path / f"{uids[k]}.xml"
            path.write_text(
                f"<annotation><object><name>A</name><bndbox><xmin>{cols.min()}</xmin><ymin>{rows.min()}</ymin>"
                f"<xmax>{cols.max()}</xmax><ymax>{rows.max()}</ymax></bndbox></object></annotation>"
            )
            index[hash_uid(uids[k])] = path
    [lesion] = voc_lesions(stored, index)
    assert lesion.box == truth and len(lesion.slice_boxes) == truth[3] - truth[0] + 1
    disp = to_display(stored)
    centre = disp.index(lesion.centre_mm)
    assert lesion.contains(centre, lesion.centre_mm)
    assert not lesion.contains(centre + (truth[3] - truth[0] + 2, 0, 0), lesion.centre_mm)


def test_voc_after_resampling_uses_the_source_positions(tmp_path):
    vol = Volume(np.zeros((5, 8, 8), np.int16), spacing=(2.0, 1.0, 1.0))
    vol.meta.update(
        sop_uids=[],
        source_sop_uids=[hash_uid(u) for u in ("9.1", "9.2", "9.3")],
        source_slice_positions_mm=[0.0, 3.1, 8.0],
        slice_positions_mm=[0.0, 2.0, 4.0, 6.0, 8.0],
    )
    (tmp_path / "9.2.xml").write_text(
        "<annotation><object><name>A</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>"
        "</bndbox></object></annotation>"
    )
    [lesion] = voc_lesions(vol, {hash_uid("9.2"): tmp_path / "9.2.xml"})
    assert lesion.box == (2, 2, 1, 2, 4, 3)  # 3.1 mm is nearest to the resampled slice at 4.0 mm (index 2)


@pytest.mark.parametrize("order", ["LPS", "RAS", "PLI"])
def test_mask_on_another_grid(order):
    stored, mask, truth = _nodule_case("LPS")
    other = reorient(mask, order)  # another storage order of the same grid
    [lesion] = mask_lesions(other, stored)
    assert lesion.box == truth
    coarse = Volume(  # a mask on a coarser, shifted grid: same world box within a voxel
        np.zeros((10, 30, 40), np.uint8), spacing=(20.0, 10.0, 10.0), origin=(-300.0, -200.0, -100.0)
    )
    lo, hi = coarse.index(stored.world(truth[:3])), coarse.index(stored.world(truth[3:]))
    sl = tuple(
        slice(int(np.floor(min(a, b) + 0.5)), int(np.floor(max(a, b) + 0.5)) + 1) for a, b in zip(lo, hi, strict=True)
    )
    coarse.array[sl] = 1
    coarse.array[0, 0, 0] = 1  # a second component, outside the CT: left out
    [mapped] = mask_lesions(coarse, stored)
    assert np.allclose(mapped.box[:3], truth[:3], atol=7) and np.allclose(mapped.box[3:], truth[3:], atol=7)
    assert mask_lesions(coarse.with_array(np.zeros_like(coarse.array)), stored) == []


def test_spheres_from_a_coordinate_csv(tmp_path):
    vol = Volume(np.zeros((10, 20, 20), np.int16), spacing=(2.0, 1.0, 1.0), origin=(-10.0, -10.0, 0.0))
    vol.meta["series_uid"] = hash_uid("1.3.6.1.99")
    csv_path = tmp_path / "annotations.csv"
    csv_path.write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm\n1.3.6.1.99,0,0,10,6\nscan-b,1,1,1,4\nother,0,0,0,5\n"
    )
    rows = read_coordinate_csv(csv_path)
    mine = csv_rows_for_series(rows, vol, {"scan-b"})
    assert mine == [(0.0, 0.0, 10.0, 6.0), (1.0, 1.0, 1.0, 4.0)]
    first = sphere_lesions(vol, mine[:1])[0]
    assert first.box == (4, 7, 7, 6, 13, 13) and first.slice_boxes[5] == (7, 7, 13, 13)
    assert first.slice_boxes[4] == first.slice_boxes[6] == (8, 8, 12, 12)  # 2 mm off centre: radius sqrt(5)
    assert first.contains((0, 0, 0), (0.0, 2.9, 10.0)) and not first.contains((0, 0, 0), (0.0, 3.1, 10.0))
    for text, why in (
        ("seriesuid,coordX,coordY\n1,2,3\n", "lacks the columns"),
        ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1,a,0,0,5\n", "line 2"),
        ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1,0,0,0,-5\n", "diameter"),
    ):
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(CorruptFileError, match=why) as err:
            read_coordinate_csv(tmp_path / "bad.csv")
        assert err.value.path == "bad.csv"


def test_development_series_are_marked():
    dev = {"Lung_Dx-A0002": "tuned on it", "case7": "named"}
    assert dev_reason("/d/Lung_Dx-A0002/series_B40f_8mm", dev) == "Lung_Dx-A0002: tuned on it"
    assert dev_reason("/d/case7.nii.gz", dev) == "case7: named"
    assert dev_reason("/d/Lung_Dx-A00021/series", dev) is None and dev_reason("/d/case70.nii.gz", dev) is None


def test_run_evaluation_end_to_end(tmp_path):
    vol, _ = chest_phantom(nodule_radius_mm=9.0)
    stored, mask, truth = _nodule_case("RAS")
    save(stored, tmp_path / "nodule.nii.gz")
    save(reorient(chest_phantom()[0], "RAS"), tmp_path / "clean.nii.gz")
    (tmp_path / "masks").mkdir()
    save(mask, tmp_path / "masks" / "nodule_mask.nii.gz")
    centre = to_display(stored).world(np.add(truth[:3], truth[3:]) / 2)
    (tmp_path / "c.csv").write_text(
        f"seriesuid,coordX,coordY,coordZ,diameter_mm\nnodule,{centre[0]},{centre[1]},{centre[2]},18\n"
    )
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    paths = [tmp_path / "nodule.nii.gz", tmp_path / "clean.nii.gz", tmp_path / "broken.nii.gz"]
    report = run_evaluation(paths, masks=tmp_path / "masks", coords=tmp_path / "c.csv", dev_series=["clean"])
    nodule, clean, broken = report.series
    assert [les.source for les in nodule.lesions] == ["mask", "csv"]
    assert all(les.rank == 1 and les.iou_3d > 0.3 for les in nodule.lesions)
    assert clean.lesions == [] and clean.development and not nodule.development
    assert broken.error and "broken.nii.gz" in broken.error and str(tmp_path) not in broken.error
    overall = report.overall
    assert overall["all"]["failed"] == 1 and overall["all"]["lesions"] == 2 and overall["all"]["rank_1"] == 2
    fp = clean.false_candidates + nodule.false_candidates
    assert overall["all"]["froc"]["curve_ends_at"] == pytest.approx(fp / 2, abs=1e-3)
    assert overall["held_out"]["series"] == 1 and overall["held_out"]["froc"]["sensitivity"][1.0] == 1.0
    assert report.development == {"clean": "named with --dev-series"}
    with pytest.raises(InputNotFoundError, match="no annotations"):
        run_evaluation(paths)
