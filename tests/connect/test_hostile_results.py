"""Results as DICOM from careless or hostile inputs: numbers that are not finite, boxes off the volume, sources of
mixed patients or studies or broken geometry, hundreds of candidates, MR and one-slice series.

Synthetic series (``tests/io/dicom_factory``); every object that is written must pass dciodvfy.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_factory import write_ct_series
from dicom_results_checks import dciodvfy_errors, segment_labels, sr_groups, synthetic_findings

from ctlens.analysis.analyze import analyze, load_for_analysis
from ctlens.analysis.findings import Candidate
from ctlens.connect.results import dicom_results, write_dicom_results
from ctlens.connect.seg import MAX_CANDIDATE_SEGMENTS
from ctlens.core.errors import PacsError


@pytest.fixture
def series(tmp_path):
    truth = write_ct_series(tmp_path / "s", n_slices=6, rows=24, cols=24, seed=3)
    return truth, load_for_analysis(tmp_path / "s")


def _headers(truth) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in truth.paths]


def _numbers(ds: pydicom.Dataset) -> list[str]:
    return [str(e.value) for e in ds.iterall() if e.keyword in ("NumericValue", "FloatingPointValue")]


def test_non_finite_numbers_are_left_out_of_the_sr(series, tmp_path) -> None:
    truth, volume = series
    findings = synthetic_findings(volume.shape)
    findings.measurements |= {"lung_volume_ml": float("inf"), "laa950_percent": float("nan"), "pd15_hu": -np.inf}
    first, second = findings.candidates
    first.diameter_mm, first.volume_ml = float("nan"), float("inf")
    second.diameter_mm = second.volume_ml = second.mean_hu = second.score = float("nan")
    paths = write_dicom_results(findings, volume, truth.paths, tmp_path / "out")
    assert [p.name for p in paths] == ["seg.dcm", "sr.dcm"]
    sr = pydicom.dcmread(paths[1])
    assert not [v for v in _numbers(sr) if "nan" in v.lower() or "inf" in v.lower()]
    groups = sr_groups(sr)
    assert set(groups["candidate 1 (nodule, left)"]["values"]) == {
        ("Attenuation Coefficient", "[hnsf'U]"),
        ("candidate score (model output, not a diagnosis)", "1"),
    }
    assert groups["candidate 2 (mass, right)"]["values"] == {}
    assert ("Volume", "mL") not in groups["lungs"]["values"]
    assert groups["lungs"]["values"][("Attenuation Coefficient", "[hnsf'U]")] == -774.56
    assert not dciodvfy_errors(paths[1])


def test_boxes_off_the_volume_and_nan_centres(series, tmp_path) -> None:
    truth, volume = series
    findings = synthetic_findings(volume.shape)
    first, second = findings.candidates
    first.slice_boxes = {2: (100, 100, 120, 120), 3: (-10, -10, -5, -5), 4: (float("nan"), 0, 3, 3)}
    first.centre_voxel = (float("nan"), 1.0, 1.0)
    second.bbox = (-5, -7, 20, 1000, 30, 1000)  # partly outside: cut to the volume
    paths = write_dicom_results(findings, volume, truth.paths, tmp_path / "out", heatmap=True)
    assert [p.name for p in paths] == ["seg.dcm", "sr.dcm", "sc.dcm"]
    seg = pydicom.dcmread(paths[0])
    labels = segment_labels(seg)
    assert "candidate 1 (nodule, left)" not in labels  # no pixels on the volume: no segment
    import highdicom as hd

    pixels = hd.seg.segread(paths[0]).get_volume(segment_numbers=[labels["candidate 2 (mass, right)"]])
    assert int(pixels.array.sum()) == volume.shape[0] * 24 * 4  # every slice, all rows, columns 20..23
    assert "candidate 1 (nodule, left)" in sr_groups(pydicom.dcmread(paths[1]))  # the SR still reports it
    for path in paths:
        assert not dciodvfy_errors(path), path.name


def test_sources_that_mix_patients_or_studies_are_refused(series) -> None:
    truth, volume = series
    findings = synthetic_findings(volume.shape)
    for keyword, value in (
        ("PatientID", "SOMEONE-ELSE"),
        ("PatientName", "Else^Someone"),
        ("StudyInstanceUID", "1.2.3"),
    ):
        headers = _headers(truth)
        setattr(headers[2], keyword, value)
        with pytest.raises(PacsError, match=f"disagree on {keyword} \\(2 different values\\)") as info:
            dicom_results(findings, volume, headers)
        assert value not in str(info.value)  # identifying values are never shown
    headers = _headers(truth)
    for ds in headers:  # the analysed series UID, filed under another study
        ds.StudyInstanceUID = "1.2.3.4"
    with pytest.raises(PacsError, match="belong to another study than the analysed one"):
        dicom_results(findings, volume, headers)


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_sources_with_broken_geometry(series) -> None:
    truth, volume = series
    findings = synthetic_findings(volume.shape)
    headers = _headers(truth)
    headers[2].ImagePositionPatient = ["nan", "0", "0"]
    with pytest.raises(PacsError, match="has no valid ImagePositionPatient"):
        dicom_results(findings, volume, headers)
    headers = _headers(truth)
    for ds in headers:
        ds.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
    with pytest.raises(PacsError, match="no instance of the analysed series lies on the volume's grid \\(6 of another"):
        dicom_results(findings, volume, headers)
    headers = _headers(truth)
    del headers[1].ImagePositionPatient  # not an image of the stack: left out, the others are used
    seg, _ = dicom_results(findings, volume, headers)
    refs = {str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert refs == set(truth.sop_uids) - {str(headers[1].SOPInstanceUID)}
    for ds in headers:
        ds.pop("ImagePositionPatient", None)
    with pytest.raises(PacsError, match="none of the 0 image series here is the analysed series"):
        dicom_results(findings, volume, headers)


def test_hundreds_of_candidates_are_bounded_in_the_seg_not_the_sr(series) -> None:
    truth, volume = series
    findings = synthetic_findings(volume.shape)
    findings.candidates = [
        Candidate(kind="nodule", side="left", score=0.5, diameter_mm=4.0, volume_ml=0.1, mean_hu=1.0,
                  centre_voxel=(1.0, 5.0, 5.0), bbox=(k % 6, k % 20, k % 20, k % 6, k % 20 + 2, k % 20 + 2))
        for k in range(60)
    ]  # fmt: skip
    seg, sr = dicom_results(findings, volume, truth.paths)
    assert len(seg.SegmentSequence) == 2 + MAX_CANDIDATE_SEGMENTS == 22
    groups = sr_groups(sr)
    assert sum(label.startswith("candidate ") for label in groups) == 60
    assert groups["candidate 60 (nodule, left)"]["segment"] is None  # reported, without a segment
    assert groups["candidate 1 (nodule, left)"]["segment"] == 3


def test_mr_and_one_slice_series(tmp_path) -> None:
    truth = write_ct_series(tmp_path / "mr", n_slices=5, rows=24, cols=24)
    for path in truth.paths:
        ds = pydicom.dcmread(path)
        ds.Modality, ds.SOPClassUID = "MR", "1.2.840.10008.5.1.4.1.1.4"
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.save_as(path, enforce_file_format=True)
    write_ct_series(tmp_path / "one", n_slices=1, rows=24, cols=24)
    for name, folder in (("mr", tmp_path / "mr"), ("one", tmp_path / "one")):
        volume = load_for_analysis(folder)
        findings = synthetic_findings(volume.shape) if volume.shape[0] >= 3 else analyze(volume)
        paths = write_dicom_results(findings, volume, folder, tmp_path / f"out-{name}", heatmap=True)
        assert "sr.dcm" in [p.name for p in paths], name
        for path in paths:
            assert not dciodvfy_errors(path), (name, path.name)
        sr = pydicom.dcmread(tmp_path / f"out-{name}" / "sr.dcm")
        (procedure,) = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121058"]
        assert procedure.ConceptCodeSequence[0].CodeMeaning.startswith("MRI" if name == "mr" else "CT"), name
