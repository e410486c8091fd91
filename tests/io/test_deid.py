"""Tests for ctlens.io.deid, deid_profile and uid_hash on synthetic CT files full of PHI."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from ctlens.core.errors import CorruptFileError, CTLensError, InputNotFoundError
from ctlens.io import deid
from ctlens.io.deid import DeidReport, deidentify_dataset, deidentify_file, deidentify_path
from ctlens.io.deid_profile import PROFILE_ACTIONS, PROFILE_NAME
from ctlens.io.uid_hash import FORBIDDEN_META_KEYS, deidentify_meta, hash_uid

STUDY_UID = "1.2.826.0.1.3680043.8.498.11111111111111111111"
SERIES_UID = "1.2.826.0.1.3680043.8.498.22222222222222222222"
FOR_UID = "1.2.826.0.1.3680043.8.498.33333333333333333333"
SOURCE_UID = "1.2.826.0.1.3680043.8.498.44444444444444444444"

PHI = [
    "Doe^Johnathan",
    "PID-98765",
    "19450317",
    "42 Elm Street Springfield",
    "555-0199-777",
    "OTHERID-31337",
    "Smallville General Hospital",
    "Radiology Dept West",
    "Dr^Referrer^Quinn",
    "Operator^Olga",
    "ACC-24680",
    "STUDY-777",
    "CTSTATION-9",
    "SN-0042-XYZ",
    "20240229",
    "Nested^Nancy",
    "PRIVATE-SECRET-PHI",
    "ACME PRIVATE CREATOR",
    "Smoker since 1970",
    "REQ-PROC-1234",
    STUDY_UID,
    SERIES_UID,
    FOR_UID,
    SOURCE_UID,
]


def _pixels() -> np.ndarray:
    return np.arange(-8, 8, dtype=np.int16).reshape(4, 4) * 100


def make_ct(path: Path, sop_uid: str, *, instance: int = 1) -> Path:
    """Write a small CT file full of PHI to ``path``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "CTSTATION-9"

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FOR_UID
    ds.Modality = "CT"
    ds.Manufacturer = "ACME Imaging"
    ds.ConvolutionKernel = "B30f"
    ds.SliceThickness = "1.25"
    ds.PatientName = "Doe^Johnathan"
    ds.PatientID = "PID-98765"
    ds.PatientBirthDate = "19450317"
    ds.PatientSex = "M"
    ds.PatientAge = "079Y"
    ds.PatientAddress = "42 Elm Street Springfield"
    ds.PatientTelephoneNumbers = "555-0199-777"
    ds.OtherPatientIDs = "OTHERID-31337"
    ds.SmokingStatus = "YES"
    ds.AdditionalPatientHistory = "Smoker since 1970"
    ds.InstitutionName = "Smallville General Hospital"
    ds.InstitutionalDepartmentName = "Radiology Dept West"
    ds.ReferringPhysicianName = "Dr^Referrer^Quinn"
    ds.OperatorsName = "Operator^Olga"
    ds.AccessionNumber = "ACC-24680"
    ds.StudyID = "STUDY-777"
    ds.StationName = "CTSTATION-9"
    ds.DeviceSerialNumber = "SN-0042-XYZ"
    for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, kw, "20240229")
    for kw in ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"):
        setattr(ds, kw, "101530")
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0.0, 0.0, float(instance)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]

    # nested sequences holding names: one the table names (D), one it does not (emptied to be safe)
    code_item = Dataset()
    code_item.CodeValue = "51185008"
    code_item.CodingSchemeDesignator = "SCT"
    code_item.CodeMeaning = "Chest"
    code_item.AuthorObserverSequence = Sequence([Dataset()])  # removed (X)
    code_item.AuthorObserverSequence[0].add_new(0x0040A123, "PN", "Nested^Nancy")
    evaluator = Dataset()
    evaluator.EvaluatorName = "Nested^Nancy"
    code_item.ContentSequence = Sequence([evaluator])  # removed (X)
    ds.AnatomicRegionSequence = Sequence([code_item])
    ds.RelatedSeriesSequence = Sequence([Dataset()])  # kept, recursed into
    ds.RelatedSeriesSequence[0].EvaluatorName = "Nested^Nancy"
    ds.RelatedSeriesSequence[0].StudyInstanceUID = STUDY_UID
    src_item = Dataset()
    src_item.ReferencedSOPClassUID = CTImageStorage
    src_item.ReferencedSOPInstanceUID = SOURCE_UID
    src_item.PersonName = "Nested^Nancy"  # listed as D
    ds.SourceImageSequence = Sequence([src_item])
    request = Dataset()
    request.RequestedProcedureID = "REQ-PROC-1234"
    request.ScheduledPerformingPhysicianName = "Nested^Nancy"
    ds.RequestAttributesSequence = Sequence([request])

    block = ds.private_block(0x0029, "ACME PRIVATE CREATOR", create=True)
    block.add_new(0x10, "LO", "PRIVATE-SECRET-PHI")
    block.add_new(0x11, "SH", "ANOTHER")

    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = _pixels().tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def ct_file(tmp_path: Path) -> Path:
    return make_ct(tmp_path / "in" / "ct1.dcm", "1.2.826.0.1.3680043.8.498.55555555555555555555")


# ------------------------------------------------------------------------------------------------ the table


def test_profile_table_uses_dicom_keywords_and_known_actions() -> None:
    unknown = [kw for kw in PROFILE_ACTIONS if tag_for_keyword(kw) is None]
    assert unknown == []
    assert set(PROFILE_ACTIONS.values()) <= {"D", "Z", "X", "K", "U"}
    assert len(PROFILE_ACTIONS) >= 100
    for kw in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "AccessionNumber",
        "StudyDate",
        "ReferringPhysicianName",
    ):
        assert PROFILE_ACTIONS[kw] == "Z"
    for kw in ("PatientAddress", "OtherPatientIDs", "InstitutionName", "OperatorsName", "StationName"):
        assert PROFILE_ACTIONS[kw] == "X"
    assert PROFILE_ACTIONS["StudyInstanceUID"] == "U"
    assert PROFILE_ACTIONS["TransferSyntaxUID"] == "K"


# ------------------------------------------------------------------------------------------------ files


def test_written_file_contains_no_phi(ct_file: Path, tmp_path: Path) -> None:
    assert all(s.encode() in ct_file.read_bytes() for s in PHI)  # the fixture really holds all of it
    out = tmp_path / "out" / "ct1.dcm"
    deidentify_file(ct_file, out, salt="pepper")
    raw = out.read_bytes()
    leaked = [s for s in PHI if s.encode() in raw]
    assert leaked == []
    ds = pydicom.dcmread(out)
    assert ds.Modality == "CT" and ds.Manufacturer == "ACME Imaging" and ds.ConvolutionKernel == "B30f"
    assert ds.PatientName == "" and ds.PatientID == "" and ds.StudyDate == "" and ds.AccessionNumber == ""
    assert "PatientAddress" not in ds and "InstitutionName" not in ds and "RequestAttributesSequence" not in ds
    assert ds.SourceImageSequence[0].PersonName == "ANONYMOUS"
    assert ds.RelatedSeriesSequence[0].EvaluatorName == ""
    assert ds.RelatedSeriesSequence[0].StudyInstanceUID == ds.StudyInstanceUID == hash_uid(STUDY_UID, "pepper")
    assert "ContentSequence" not in ds.AnatomicRegionSequence[0] and ds.AnatomicRegionSequence[0].CodeMeaning == "Chest"
    assert ds.PatientIdentityRemoved == "YES"
    assert "Basic Application Confidentiality Profile" in ds.DeidentificationMethod
    codes = ds.DeidentificationMethodCodeSequence
    assert [(c.CodeValue, c.CodingSchemeDesignator) for c in codes] == [("113100", "DCM")]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.preamble == b"\0" * 128


def test_pixel_data_unchanged(ct_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.dcm"
    deidentify_file(ct_file, out)
    ds = pydicom.dcmread(out)
    np.testing.assert_array_equal(ds.pixel_array, _pixels())
    assert ds.PixelData == pydicom.dcmread(ct_file).PixelData
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


@pytest.mark.parametrize(
    ("implicit", "little"), [(True, True), (False, True), (False, False)], ids=["implicit", "explicit", "big-endian"]
)
def test_bare_data_set_becomes_a_clean_ps310_file(ct_file: Path, tmp_path: Path, implicit: bool, little: bool) -> None:
    """A file without preamble, DICM or file meta (ACR-NEMA style) is de-identified and written as PS3.10."""
    import dicom_factory

    bare = dicom_factory.write_raw_dataset(ct_file, tmp_path / "bare" / "ct1", implicit=implicit, little=little)
    assert bare.read_bytes()[128:132] != b"DICM" and all(s.encode() in bare.read_bytes() for s in PHI[:3])
    out = tmp_path / "out" / "ct1.dcm"
    deidentify_file(bare, out, salt="pepper")
    raw = out.read_bytes()
    assert raw[128:132] == b"DICM" and [s for s in PHI if s.encode() in raw] == []
    ds = pydicom.dcmread(out)
    assert ds.PatientName == "" and ds.PatientIdentityRemoved == "YES"
    assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != pydicom.dcmread(ct_file).SOPInstanceUID
    np.testing.assert_array_equal(ds.pixel_array, _pixels())
    truncated = tmp_path / "bare" / "cut"
    truncated.write_bytes(bare.read_bytes()[:-10])
    with pytest.raises(CorruptFileError, match="cut"):
        deidentify_file(truncated, tmp_path / "out" / "cut.dcm")
    assert not (tmp_path / "out" / "cut.dcm").exists()


def test_uids_replaced_consistently_across_files(tmp_path: Path) -> None:
    a = make_ct(tmp_path / "in" / "a.dcm", "1.2.826.0.1.3680043.8.498.1001", instance=1)
    b = make_ct(tmp_path / "in" / "b.dcm", "1.2.826.0.1.3680043.8.498.1002", instance=2)
    deidentify_file(a, tmp_path / "out" / "a.dcm", salt="s1")
    deidentify_file(b, tmp_path / "out" / "b.dcm", salt="s1")
    da, db = (pydicom.dcmread(tmp_path / "out" / n) for n in ("a.dcm", "b.dcm"))
    for kw, uid in (
        ("StudyInstanceUID", STUDY_UID),
        ("SeriesInstanceUID", SERIES_UID),
        ("FrameOfReferenceUID", FOR_UID),
    ):
        assert da[kw].value == db[kw].value == hash_uid(uid, "s1") != uid
    assert da.SOPInstanceUID == hash_uid("1.2.826.0.1.3680043.8.498.1001", "s1") != db.SOPInstanceUID
    assert da.file_meta.MediaStorageSOPInstanceUID == da.SOPInstanceUID
    assert db.file_meta.MediaStorageSOPInstanceUID == db.SOPInstanceUID
    assert da.SOPClassUID == da.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert da.SourceImageSequence[0].ReferencedSOPInstanceUID == hash_uid(SOURCE_UID, "s1")
    assert da.SourceImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert all(len(ds[kw].value) <= 64 for ds in (da, db) for kw in ("StudyInstanceUID", "SOPInstanceUID"))
    # a different salt gives different UIDs
    deidentify_file(a, tmp_path / "other.dcm", salt="s2")
    assert pydicom.dcmread(tmp_path / "other.dcm").StudyInstanceUID != da.StudyInstanceUID


def test_private_tags_removed_and_counted(ct_file: Path, tmp_path: Path) -> None:
    report = deidentify_file(ct_file, tmp_path / "out.dcm")
    ds = pydicom.dcmread(tmp_path / "out.dcm")
    assert not any(elem.tag.is_private for elem in ds)
    assert report.private_removed == 3  # creator + two elements


def test_report_lists_actions(ct_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.dcm"
    report = deidentify_file(ct_file, out)
    assert isinstance(report, DeidReport)
    for kw in ("PatientAddress", "PatientTelephoneNumbers", "OtherPatientIDs", "InstitutionName", "OperatorsName"):
        assert kw in report.removed
    assert "RequestAttributesSequence" in report.removed
    assert "file_meta.SourceApplicationEntityTitle" in report.removed
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        assert kw in report.emptied
    assert "SourceImageSequence[0].PersonName" in report.replaced
    assert "RelatedSeriesSequence[0].EvaluatorName" in report.emptied
    assert "AnatomicRegionSequence[0].ContentSequence" in report.removed
    for kw in ("StudyInstanceUID", "SOPInstanceUID", "file_meta.MediaStorageSOPInstanceUID"):
        assert kw in report.uid_replaced
    assert "SourceImageSequence[0].ReferencedSOPInstanceUID" in report.uid_replaced
    assert report.source == str(ct_file) and report.destination == str(out)
    assert json.loads(json.dumps(report.to_dict()))["private_removed"] == 3
    summary = report.summary()
    assert "\n" not in summary and f"removed {len(report.removed)}" in summary and str(out) in summary
    assert report.warnings == []


def test_burned_in_annotation_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = make_ct(tmp_path / "in" / "b.dcm", "1.2.3.4")
    ds = pydicom.dcmread(src)
    del ds.BurnedInAnnotation
    ds.save_as(src)
    with caplog.at_level(logging.WARNING, logger=deid.__name__):
        report = deidentify_file(src, tmp_path / "out.dcm")
    assert report.warnings and "BurnedInAnnotation" in caplog.text


def test_dataset_in_place_and_idempotent_markers() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.ContrastBolusAgent = "Iohexol Lot 12"
    ds.add_new(0x00091001, "LO", "x")
    ds.add_new(0x60003000, "OW", b"\0\0")
    ds.add_new(0x60004000, "LT", "overlay comment with PHI")
    ds.SOPClassUID = CTImageStorage
    ds.CodingSchemeUID = "2.16.840.1.113883.6.96"
    report = deidentify_dataset(ds)
    assert ds.ContrastBolusAgent == "ANONYMIZED" and "ContrastBolusAgent" in report.replaced
    assert 0x60003000 not in ds and 0x60004000 not in ds and "OverlayComments" in report.removed
    assert ds.SOPClassUID == CTImageStorage and ds.CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert report.private_removed == 1
    deidentify_dataset(ds)
    assert len(ds.DeidentificationMethodCodeSequence) == 1
    assert ds.DeidentificationMethod == PROFILE_NAME


# ------------------------------------------------------------------------------------------------ bad input


def _no_outputs(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "truncated_meta"])
def test_bad_input_raises_corrupt_and_writes_nothing(kind: str, ct_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "in" / f"bad_{kind}.dcm"
    data = ct_file.read_bytes()
    bad.write_bytes(
        {
            "empty": b"",
            "text": b"patient: Doe^Johnathan\n" * 20,
            "truncated": data[: len(data) - 10],
            "truncated_meta": data[:150],
        }[kind]
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(CorruptFileError) as info:
        deidentify_file(bad, out_dir / "x.dcm")
    assert bad.name in str(info.value)
    assert _no_outputs(out_dir)


def test_missing_input_and_same_destination(ct_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="nope.dcm"):
        deidentify_file(tmp_path / "nope.dcm", tmp_path / "out.dcm")
    before = ct_file.read_bytes()
    with pytest.raises(CTLensError, match="overwrite the source"):
        deidentify_file(ct_file, ct_file)
    with pytest.raises(CTLensError, match="overwrite the source"):
        deidentify_file(ct_file, ct_file.parent)  # a folder destination keeps the name: the same file
    assert ct_file.read_bytes() == before


def test_failed_write_leaves_no_file(ct_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.dcm").write_bytes(b"previous")

    def boom(fh: BinaryIO, ds: Dataset, **kwargs: object) -> None:  # stands in for pydicom.dcmwrite
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(deid.pydicom, "dcmwrite", boom)
    with pytest.raises(CTLensError, match="disk full"):
        deidentify_file(ct_file, out_dir / "keep.dcm")
    assert [p.name for p in out_dir.iterdir()] == ["keep.dcm"]
    assert (out_dir / "keep.dcm").read_bytes() == b"previous"


# ------------------------------------------------------------------------------------------------ folders


def test_folder_keeps_layout_and_skips_non_dicom(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "study"
    make_ct(src / "s1" / "1.dcm", "1.2.3.1")
    make_ct(src / "s1" / "2.dcm", "1.2.3.2", instance=2)
    make_ct(src / "s2" / "deep" / "3", "1.2.3.3")
    (src / "notes.txt").write_text("Doe^Johnathan called")
    (src / "s1" / "empty.dcm").write_bytes(b"")
    (src / "linked").symlink_to(src / "s1", target_is_directory=True)
    dst = tmp_path / "clean"
    with caplog.at_level(logging.WARNING, logger=deid.__name__):
        reports = deidentify_path(src, dst, salt="k")
    written = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert written == ["s1/1.dcm", "s1/2.dcm", "s2/deep/3"]
    assert len(reports) == 3
    assert "notes.txt" in caplog.text and "empty.dcm" in caplog.text and "symbolic link" in caplog.text
    uids = {pydicom.dcmread(dst / w).StudyInstanceUID for w in written}
    assert uids == {hash_uid(STUDY_UID, "k")}
    assert all(s.encode() not in (dst / w).read_bytes() for w in written for s in PHI)


def test_folder_rejects_destination_inside_source(tmp_path: Path) -> None:
    src = tmp_path / "study"
    make_ct(src / "1.dcm", "1.2.3.1")
    with pytest.raises(CTLensError, match="inside the source"):
        deidentify_path(src, src / "clean")
    with pytest.raises(CTLensError, match="inside the source"):
        deidentify_path(src, src)
    assert [p.name for p in src.iterdir()] == ["1.dcm"]


def test_path_single_file_and_empty_folder(ct_file: Path, tmp_path: Path) -> None:
    reports = deidentify_path(ct_file, tmp_path / "single.dcm")
    assert len(reports) == 1 and (tmp_path / "single.dcm").is_file()
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "a.txt").write_text("hi")
    with pytest.raises(InputNotFoundError, match="no DICOM files"):
        deidentify_path(tmp_path / "nothing", tmp_path / "o")


# ------------------------------------------------------------------------------------------------ metadata


def test_deidentify_meta_drops_identifiers_and_hashes_uids() -> None:
    meta = {
        "patient_name": "Doe^Johnathan",
        "PatientID": "PID-98765",
        "patient-birth-date": "19450317",
        "birth_date": "19450317",
        "dob": "1945-03-17",
        "patient_address": "42 Elm Street",
        "phone": "555",
        "OtherPatientIDs": "X",
        "accession_number": "ACC",
        "study_id": "S1",
        "institution_name": "Hospital",
        "referring_physician_name": "Dr^Who",
        "operators_name": "Op",
        "study_date": "20240229",
        "manufacturer": "ACME",
        "kernel": "B30f",
        "slice_thickness": 1.25,
        "body_part": "CHEST",
        "series_uid": SERIES_UID,
        "StudyInstanceUID": STUDY_UID,
        "frame_of_reference_uid": "2.25.123",
        "sop_class_uid": CTImageStorage,
        "source_uids": [SOURCE_UID, "2.25.9"],
        "acquisition": {"patient_name": "x", "kvp": 120},
    }
    original = dict(meta)
    out = deidentify_meta(meta)
    assert meta == original  # input untouched
    assert out == {
        "manufacturer": "ACME",
        "kernel": "B30f",
        "slice_thickness": 1.25,
        "body_part": "CHEST",
        "series_uid": hash_uid(SERIES_UID),
        "StudyInstanceUID": hash_uid(STUDY_UID),
        "frame_of_reference_uid": "2.25.123",
        "sop_class_uid": CTImageStorage,
        "source_uids": [hash_uid(SOURCE_UID), "2.25.9"],
        "acquisition": {"kvp": 120},
    }
    assert deidentify_meta(out) == out  # idempotent


def test_forbidden_meta_keys() -> None:
    assert isinstance(FORBIDDEN_META_KEYS, frozenset)
    for key in ("patient_name", "PatientName", "patient_id", "birth_date", "accession_number", "institution_name"):
        assert key in FORBIDDEN_META_KEYS
    assert "manufacturer" not in FORBIDDEN_META_KEYS
