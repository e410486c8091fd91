"""Results as DICOM, the SEG: frames on the source instances, references, labels and masks equal to the findings.

Real data: the A0002 B40f chest CT, analysed once for the module. Synthetic series (``tests/io/dicom_factory``)
in other storage orders: feet-first, shuffled files, coronal and oblique planes, uneven slices that the reader
resampled, gantry tilt; header-only datasets from DICOM JSON (the WADO-RS path); refusals with clear errors.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_factory import CORONAL, write_ct_series, write_multiframe_ct
from dicom_results_checks import (
    check_seg,
    dciodvfy_errors,
    segment_labels,
    synthetic_findings,
    vr_length_errors,
    write_volume_series,
)

from ctlens.analysis.analyze import analyze, load_for_analysis
from ctlens.analysis.findings import Findings
from ctlens.analysis.phantoms import chest_phantom
from ctlens.analysis.stored_grid import findings_on_stored_grid
from ctlens.connect.results import dicom_results, write_dicom_results
from ctlens.core.errors import PacsError
from ctlens.core.volume import Volume
from ctlens.io.uid_hash import hash_uid
from ctlens.preprocess.display import to_display
from shared_data import data_dir


def _headers(folder) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir()) if p.suffix == ".dcm"]


# --------------------------------------------------------------------------------------------- real CT (A0002)


@pytest.fixture(scope="module")
def a0002():
    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"
    volume = load_for_analysis(folder)
    return folder, volume, analyze(volume)


def _truth_by_reader(folder, volume: Volume) -> tuple[dict[str, int], dict[str, list]]:
    """Source SOP -> slice from the reader's per-slice hashed SOP UIDs (not from geometry), and SOP -> IPP."""
    slice_of, ipps = {}, {}
    for ds in _headers(folder):
        sop = str(ds.SOPInstanceUID)
        slice_of[sop] = volume.meta["sop_uids"].index(hash_uid(sop))
        ipps[sop] = list(ds.ImagePositionPatient)
    return slice_of, ipps


@pytest.mark.shared_data
def test_a0002_seg_matches_findings_and_source(a0002, tmp_path) -> None:
    folder, volume, findings = a0002
    assert findings.candidates and findings.lung_labels is not None
    paths = write_dicom_results(findings, volume, folder, tmp_path)
    assert [p.name for p in paths] == ["seg.dcm", "sr.dcm"]
    slice_of, ipps = _truth_by_reader(folder, volume)
    seg = check_seg(paths[0], findings, volume.shape, slice_of, ipps)
    labels = segment_labels(seg)
    assert list(labels)[:3] == ["right lung", "left lung", "candidate 1 (mass, right)"]
    assert len(labels) == 2 + len(findings.candidates)
    source = _headers(folder)[0]
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert seg.get(keyword) == source.get(keyword), keyword
    items = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    cand = items[labels["candidate 1 (mass, right)"]]
    assert cand.SegmentAlgorithmType == "AUTOMATIC"
    assert cand.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Mass"
    assert "bounding region" in cand.SegmentDescription and "model output" in cand.SegmentDescription
    assert cand.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "ctlens"
    lung = items[labels["right lung"]]
    assert lung.SegmentedPropertyTypeCodeSequence[0].CodeValue == "39607008"  # SCT Lung
    assert lung.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Right"


@pytest.mark.shared_data
def test_a0002_from_dicom_json_metadata(a0002) -> None:
    """Header-only datasets from DICOM JSON (what WADO-RS metadata gives) make the same SEG frames."""
    folder, volume, findings = a0002
    datasets = [pydicom.Dataset.from_json(ds.to_json_dict()) for ds in _headers(folder)]
    seg_json = dicom_results(findings, volume, datasets)[0]
    seg_files = dicom_results(findings, volume, folder)[0]
    assert seg_json.NumberOfFrames == seg_files.NumberOfFrames
    frames = lambda s: [  # noqa: E731
        (
            str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID),
            [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient],
        )
        for f in s.PerFrameFunctionalGroupsSequence
    ]
    assert frames(seg_json) == frames(seg_files)
    assert np.array_equal(seg_json.pixel_array, seg_files.pixel_array)


@pytest.mark.shared_data
def test_a0002_other_series_is_refused(a0002) -> None:
    _, volume, findings = a0002
    other = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B70f_8mm"
    with pytest.raises(PacsError, match="none of the 1 image series here is the analysed series"):
        dicom_results(findings, volume, other)


# --------------------------------------------------------------------------------------------- synthetic series


def _rotated_orientation() -> tuple[float, ...]:
    a, b = np.deg2rad(30.0), np.deg2rad(20.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    r = rz @ rx
    return (*r[:, 0], *r[:, 1])


SCENARIOS = {
    "feet_first": {"positions": [17.5 - 2.5 * k for k in range(8)]},
    "shuffled_files": {"shuffle_names": True, "reverse_instance_numbers": True},
    "coronal": {"orientation": CORONAL},
    "oblique": {"orientation": _rotated_orientation(), "positions": [12.0 - 2.0 * k for k in range(7)]},
    "uneven_resampled": {"positions": [0.0, 2.5, 5.0, 10.0, 12.5, 15.0, 17.5, 20.3]},
}


def _expected_slices(truth, volume: Volume) -> dict[str, int]:
    """Source SOP -> volume slice from the factory's truth: rank along the normal, or the nearest grid step."""
    along = (truth.ipps - truth.ipps[0]) @ truth.normal
    if volume.meta.get("resampled_equidistant"):
        return {sop: int(round(a / volume.spacing[0])) for sop, a in zip(truth.sop_uids, along, strict=True)}
    return {sop: k for k, sop in enumerate(truth.sop_uids)}


def _fitted(findings: Findings) -> Findings:
    """The synthetic candidates' boxes cut to the grid (a coronal stack's display grid has few rows)."""
    shape = findings.heatmap.shape
    top = [s - 1 for s in shape]
    for c in findings.candidates:
        lo = [min(v, t) for v, t in zip(c.bbox[:3], top, strict=True)]
        hi = [min(v, t) for v, t in zip(c.bbox[3:], top, strict=True)]
        c.bbox, c.slice_range = (*lo, *hi), (lo[0], hi[0])
        c.slice_boxes = {
            z: (min(y0, top[1]), min(x0, top[2]), min(y1, top[1]), min(x1, top[2]))
            for z, (y0, x0, y1, x1) in c.slice_boxes.items()
            if z <= top[0]
        }
    return findings


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_synthetic_storage_orders(name: str, tmp_path) -> None:
    truth = write_ct_series(tmp_path / "series", rows=24, cols=28, seed=3, **SCENARIOS[name])
    volume = load_for_analysis(tmp_path / "series")
    if name == "uneven_resampled":
        assert volume.meta.get("resampled_equidistant") and volume.shape[0] == 9
    findings = _fitted(synthetic_findings(to_display(volume).shape))  # analysis results live on the display grid
    paths = write_dicom_results(findings, volume, truth.paths, tmp_path / "out")
    slice_of = _expected_slices(truth, volume)
    ipps = {sop: list(ipp) for sop, ipp in zip(truth.sop_uids, truth.ipps, strict=True)}
    check_seg(paths[0], findings_on_stored_grid(findings, volume), volume.shape, slice_of, ipps)


def test_analysed_phantom_series_in_shuffled_feet_first_files(tmp_path) -> None:
    """The real analysis (lung labels, a nodule) on a phantom written as DICOM, files shuffled, numbered feet-first."""
    phantom, _ = chest_phantom(nodule_radius_mm=9.0)
    sops = write_volume_series(phantom, tmp_path / "s", descending=True)
    volume = load_for_analysis(tmp_path / "s")
    findings = analyze(volume)
    assert findings.candidates and findings.lung_labels is not None
    paths = write_dicom_results(findings, volume, tmp_path / "s", tmp_path / "out")
    slice_of = {sop: volume.meta["sop_uids"].index(hash_uid(sop)) for sop in sops}
    assert slice_of == {sop: k for k, sop in enumerate(sops)}
    ipps = {str(ds.SOPInstanceUID): list(ds.ImagePositionPatient) for ds in _headers(tmp_path / "s")}
    seg = check_seg(paths[0], findings, volume.shape, slice_of, ipps)
    assert list(segment_labels(seg)) == ["right lung", "left lung", "candidate 1 (nodule, left)"]


def test_gantry_tilt_frames_are_shifted_onto_the_source_grid(tmp_path) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=6, rows=24, cols=28, spacing=(3.0, 0.7, 0.7), tilt_deg=12.0)
    volume = load_for_analysis(tmp_path / "s")
    assert volume.meta["tilt_corrected"]
    findings = synthetic_findings(volume.shape)
    seg = dicom_results(findings, volume, tmp_path / "s")[0]
    labels = segment_labels(seg)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=truth.sop_uids,
        segment_numbers=[labels["right lung"]],
        assert_missing_frames_are_empty=True,
    )
    for k in range(len(truth.sop_uids)):
        s = int(round(truth.inplane_shift[k] / volume.spacing[1]))
        assert s != 0 or k == 0
        want = np.zeros(volume.shape[1:], bool)
        plane = findings.lung_labels[k] == 1
        rows = volume.shape[1]
        lo, hi = max(0, -s), min(rows, rows - s)
        want[lo:hi] = plane[lo + s : hi + s]
        assert np.array_equal(pixels[k, :, :, 0].astype(bool), want), k


def test_synthetic_from_dicom_json(tmp_path) -> None:
    truth = write_ct_series(tmp_path / "s", positions=[7.5, 5.0, 2.5, 0.0], rows=20, cols=20)
    volume = load_for_analysis(tmp_path / "s")
    findings = synthetic_findings(volume.shape)
    datasets = [pydicom.Dataset.from_json(pydicom.dcmread(p).to_json_dict()) for p in truth.paths]
    seg, sr = dicom_results(findings, volume, datasets)
    seg.save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    ipps = {sop: list(ipp) for sop, ipp in zip(truth.sop_uids, truth.ipps, strict=True)}
    check_seg(tmp_path / "seg.dcm", findings, volume.shape, {s: k for k, s in enumerate(truth.sop_uids)}, ipps)
    assert sr.PatientID == "SYN-PAT-001"


def test_folder_with_two_series_picks_the_analysed_one(tmp_path) -> None:
    a = write_ct_series(tmp_path / "both" / "a", n_slices=4, rows=16, cols=16, seed=1, description="a")
    b = write_ct_series(tmp_path / "both" / "b", n_slices=5, rows=16, cols=16, seed=2, description="b")
    volume = load_for_analysis(a.folder)
    seg = dicom_results(synthetic_findings(volume.shape), volume, tmp_path / "both")[0]
    refs = {str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert refs == set(a.sop_uids) and not refs & set(b.sop_uids)
    volume.meta.pop("series_uid")
    with pytest.raises(PacsError, match="2 image series are here and the volume does not say which"):
        dicom_results(synthetic_findings(volume.shape), volume, tmp_path / "both")


def test_other_series_is_refused(tmp_path) -> None:
    a = write_ct_series(tmp_path / "a", n_slices=4, rows=16, cols=16, seed=1)
    b = write_ct_series(tmp_path / "b", n_slices=4, rows=16, cols=16, seed=2)
    volume = load_for_analysis(a.folder)
    with pytest.raises(PacsError, match="is the analysed series") as err:
        dicom_results(synthetic_findings(volume.shape), volume, b.folder)
    assert str(b.folder) in str(err.value) and "\n" not in str(err.value)


def test_source_off_the_volume_grid_is_refused(tmp_path) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=4, rows=16, cols=16)
    volume = load_for_analysis(truth.folder)
    moved = volume.with_array(volume.array, origin=tuple(np.asarray(volume.origin) + 1.0 * truth.normal))
    with pytest.raises(PacsError, match="not on the volume's grid"):
        dicom_results(synthetic_findings(volume.shape), moved, truth.folder)
    shifted = volume.with_array(volume.array, origin=tuple(np.asarray(volume.origin) + 0.3 * truth.direction[:, 1]))
    with pytest.raises(PacsError, match="within its plane"):
        dicom_results(synthetic_findings(volume.shape), shifted, truth.folder)


def test_multiframe_source_is_refused(tmp_path) -> None:
    truth = write_multiframe_ct(tmp_path / "mf" / "enhanced.dcm", n_frames=4, rows=16, cols=16)
    volume = load_for_analysis(truth.folder)
    with pytest.raises(PacsError, match="multi-frame"):
        dicom_results(synthetic_findings(volume.shape), volume, truth.folder)


def test_lung_mask_without_labels_and_no_candidates(tmp_path) -> None:
    """Findings from JSON + an older arrays file: one "lungs" segment from roi_mask; no candidates."""
    truth = write_ct_series(tmp_path / "s", n_slices=4, rows=16, cols=16)
    volume = load_for_analysis(truth.folder)
    findings = synthetic_findings(volume.shape)
    mask = findings.lung_labels > 0
    findings = Findings(region="chest", measurements=findings.measurements, roi_mask=mask)
    seg = dicom_results(findings, volume, truth.folder)[0]
    assert segment_labels(seg) == {"lungs": 1}
    pixels = seg.get_pixels_by_source_instance(truth.sop_uids, assert_missing_frames_are_empty=True)
    assert np.array_equal(pixels[..., 0].astype(bool), mask)


def test_nothing_to_segment_gives_sr_only_and_removes_a_stale_seg(tmp_path) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=4, rows=16, cols=16)
    volume = load_for_analysis(truth.folder)
    out = tmp_path / "out"
    assert [p.name for p in write_dicom_results(synthetic_findings(volume.shape), volume, truth.folder, out)] == [
        "seg.dcm",
        "sr.dcm",
    ]
    empty = Findings(region="abdomen", measurements={"region_coverage": {"abdomen": 1.0}})
    paths = write_dicom_results(empty, volume, truth.folder, out)
    assert [p.name for p in paths] == ["sr.dcm"]
    assert sorted(p.name for p in out.iterdir()) == ["sr.dcm"]
    assert not dciodvfy_errors(paths[0])


def test_uid_root_argument_and_setting(tmp_path, monkeypatch) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=4, rows=16, cols=16)
    volume = load_for_analysis(truth.folder)
    findings = synthetic_findings(volume.shape)
    root = "1.2.826.0.1.3680043.10.999"
    for ds in dicom_results(findings, volume, truth.folder, uid_root=root):
        assert ds.SOPInstanceUID.startswith(root + ".") and ds.SeriesInstanceUID.startswith(root + ".")
    monkeypatch.setenv("CTLENS_DICOM_UID_ROOT", "1.2.3.4")
    assert all(ds.SOPInstanceUID.startswith("1.2.3.4.") for ds in dicom_results(findings, volume, truth.folder))
    monkeypatch.delenv("CTLENS_DICOM_UID_ROOT")
    assert all(ds.SOPInstanceUID.startswith("2.25.") for ds in dicom_results(findings, volume, truth.folder))


def test_heatmap_secondary_capture(tmp_path) -> None:
    truth = write_ct_series(tmp_path / "s", positions=[7.5, 5.0, 2.5, 0.0], rows=20, cols=24)
    volume = load_for_analysis(truth.folder)
    findings = synthetic_findings(volume.shape)
    paths = write_dicom_results(findings, volume, truth.folder, tmp_path / "out", heatmap=True)
    assert [p.name for p in paths] == ["seg.dcm", "sr.dcm", "sc.dcm"]
    assert not dciodvfy_errors(paths[2])
    sc = pydicom.dcmread(paths[2])
    assert not vr_length_errors(sc)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == truth.sop_uids[2]  # candidate 1's centre slice
    assert sc.pixel_array.shape == (20, 24, 3) and sc.PatientID == "SYN-PAT-001"
    hot = sc.pixel_array[3:7, 3:6].astype(int)  # heat 1.0 there: red/yellow, not grey
    assert (hot[..., 0] - hot[..., 2] > 100).all()
    assert "model output" in sc.SeriesDescription and sc.BurnedInAnnotation == "NO"
    y0, x0, y1, x1 = findings.candidates[0].slice_boxes[2]
    assert tuple(sc.pixel_array[y0 - 2, x0]) == (255, 255, 0)  # the candidate's box outline, yellow
