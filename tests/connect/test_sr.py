"""Results as DICOM, the TID 1500 SR: every number equals the findings', groups reference the right SEG segments.

Real data: the A0002 B40f chest CT analysed once for the module; synthetic series for values a DS cannot hold,
reports without a SEG and the evidence / patient modules.
"""

from __future__ import annotations

import pydicom
import pytest
from dicom_factory import write_ct_series
from dicom_results_checks import (
    check_sr_candidates,
    check_sr_lungs,
    dciodvfy_errors,
    segment_labels,
    sr_groups,
    synthetic_findings,
    vr_length_errors,
    write_volume_series,
)
from pydicom.uid import Comprehensive3DSRStorage

from ctlens.analysis.analyze import analyze, load_for_analysis
from ctlens.analysis.findings import Findings
from ctlens.analysis.phantoms import head_phantom
from ctlens.connect.results import dicom_results, write_dicom_results
from shared_data import data_dir


@pytest.fixture(scope="module")
def a0002_results(tmp_path_factory):
    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"
    volume = load_for_analysis(folder)
    findings = analyze(volume)
    paths = write_dicom_results(findings, volume, folder, tmp_path_factory.mktemp("a0002"))
    return folder, findings, paths


@pytest.mark.shared_data
def test_a0002_sr_values_equal_the_findings(a0002_results) -> None:
    folder, findings, (seg_path, sr_path) = a0002_results
    assert not dciodvfy_errors(sr_path)
    sr, seg = pydicom.dcmread(sr_path), pydicom.dcmread(seg_path)
    assert sr.SOPClassUID == Comprehensive3DSRStorage
    assert not vr_length_errors(sr)
    groups = sr_groups(sr)
    assert len(findings.candidates) >= 1  # vessels are no longer candidates (#15): the tumour alone
    check_sr_candidates(groups, seg, findings)
    check_sr_lungs(groups, findings)
    lung_labels = segment_labels(seg)
    assert groups["right lung"]["segment"] == lung_labels["right lung"]
    assert groups["left lung"]["segment"] == lung_labels["left lung"]


@pytest.mark.shared_data
def test_a0002_sr_keeps_the_source_patient_and_references_the_evidence(a0002_results) -> None:
    folder, _, (seg_path, sr_path) = a0002_results
    sr, seg = pydicom.dcmread(sr_path), pydicom.dcmread(seg_path)
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "StudyInstanceUID", "AccessionNumber"):
        assert sr.get(keyword) == sources[0].get(keyword), keyword
    evidence = {
        str(i.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for i in series.ReferencedSOPSequence
    }
    assert evidence == {str(s.SOPInstanceUID) for s in sources} | {str(seg.SOPInstanceUID)}
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    assert "model output" in sr.SeriesDescription


def test_synthetic_sr_values_exact_and_segments(tmp_path) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=6, rows=20, cols=20)
    volume = load_for_analysis(truth.folder)
    findings = synthetic_findings(volume.shape)
    assert findings.candidates[1].score == 1 / 3  # not representable in a DS: needs the FloatingPointValue
    seg_path, sr_path = write_dicom_results(findings, volume, truth.folder, tmp_path / "out")
    assert not dciodvfy_errors(sr_path)
    sr, seg = pydicom.dcmread(sr_path), pydicom.dcmread(seg_path)
    groups = sr_groups(sr)
    check_sr_candidates(groups, seg, findings)
    check_sr_lungs(groups, findings)
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99CTLENS"


def test_sr_without_seg_uses_image_level_groups(tmp_path) -> None:
    """No lungs and no candidate pixels: no SEG; the SR still holds every number, in TID 1501 groups."""
    truth = write_ct_series(tmp_path / "s", n_slices=4, rows=16, cols=16)
    volume = load_for_analysis(truth.folder)
    findings = Findings(
        region="head", measurements={"brain_volume_ml": 1234.5, "hyperdense_components": 0, "region_coverage": {}}
    )
    (sr,) = dicom_results(findings, volume, truth.folder)
    groups = sr_groups(sr)
    assert groups["brain"] == {
        "uid": groups["brain"]["uid"],
        "segment": None,
        "seg_uid": None,
        "type": "Brain",
        "sites": [("Brain", None)],
        "values": {("Volume", "mL"): 1234.5},
    }
    assert groups["ctlens measurements"]["values"] == {
        ("hyperdense components", "1"): 0.0,
        ("number of candidates (model output)", "1"): 0.0,
    }
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    assert not dciodvfy_errors(tmp_path / "sr.dcm")


def test_head_analysis_brain_segment_and_hyperdense_candidate(tmp_path) -> None:
    """A head CT: the brain segment (from roi_mask), a hyperdense candidate as SCT Lesion in the brain."""
    phantom, _ = head_phantom(bleed_radius_mm=12.0)
    write_volume_series(phantom, tmp_path / "s")
    volume = load_for_analysis(tmp_path / "s")
    findings = analyze(volume)
    assert findings.region == "head" and [c.kind for c in findings.candidates] == ["hyperdense"]
    seg_path, sr_path = write_dicom_results(findings, volume, tmp_path / "s", tmp_path / "out")
    assert not dciodvfy_errors(seg_path) and not dciodvfy_errors(sr_path)
    seg = pydicom.dcmread(seg_path)
    assert segment_labels(seg) == {"brain": 1, "candidate 1 (hyperdense)": 2}
    groups = sr_groups(pydicom.dcmread(sr_path))
    assert groups["brain"]["segment"] == 1
    assert groups["brain"]["values"] == {("Volume", "mL"): findings.measurements["brain_volume_ml"]}
    cand = groups["candidate 1 (hyperdense)"]
    assert cand["segment"] == 2 and cand["type"] == "Lesion" and cand["sites"] == [("Brain", None)]
    assert cand["values"][("Diameter", "mm")] == findings.candidates[0].diameter_mm
