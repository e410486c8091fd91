"""CTReportDataset over an HDF5 export + reports/labels CSVs; patient-wise split."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.data.ct_report import (
    CT_RATE_FINDINGS,
    CTReportDataset,
    PatientIdError,
    collate_ct_report,
    patient_id,
    patient_ids,
    patient_split,
    read_labels,
    read_reports,
)


@pytest.fixture()
def export(tmp_path):
    names = ["train_1_a_1", "train_1_a_2", "train_2_a_1", "train_3_b_1", "train_4_a_1"]
    with h5py.File(tmp_path / "v.h5", "w") as h5:
        for i, name in enumerate(names):
            h5.create_dataset(name, data=np.full((4, 8, 8), i, np.uint8))
    with open(tmp_path / "reports.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["VolumeName", "ClinicalInformation_EN", "Findings_EN", "Impressions_EN"])
        w.writerow(["train_1_a_1.nii.gz", "cough", "Small effusion.", "Effusion."])
        w.writerow(["train_1_a_2.nii.gz", "", "Normal lungs.", "NaN"])
        w.writerow(["train_2_a_1.nii.gz", "x", "nan", "Emphysema."])
        w.writerow(["train_3_b_1.nii.gz", "x", "", "None"])  # no text at all -> dropped
        # train_4_a_1 has no report row
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["VolumeName", *CT_RATE_FINDINGS])
        for i, name in enumerate(names):
            w.writerow([f"{name}.nii.gz", *[(i + j) % 2 for j in range(17)], ""])
    return tmp_path


def test_reports_join_sections_and_skip_missing(export):
    reports = read_reports(export / "reports.csv")
    assert reports["train_1_a_1"] == "Small effusion. Effusion."
    assert reports["train_1_a_2"] == "Normal lungs."
    assert reports["train_2_a_1"] == "Emphysema."
    assert reports["train_3_b_1"] == ""
    assert read_reports(export / "reports.csv", ["ClinicalInformation_EN"])["train_1_a_1"] == "cough"
    with pytest.raises(CorruptFileError, match="text columns"):
        read_reports(export / "reports.csv", ["Report"])


def test_labels_18_findings_with_nan(export):
    findings, labels = read_labels(export / "labels.csv", CT_RATE_FINDINGS)
    assert findings == list(CT_RATE_FINDINGS) and len(findings) == 18
    assert labels["train_2_a_1"][0] == 0 and labels["train_2_a_1"][1] == 1
    assert np.isnan(labels["train_1_a_1"][17])


def test_dataset_items(export):
    ds = CTReportDataset(export / "v.h5", export / "reports.csv", export / "labels.csv")
    assert ds.names == ["train_1_a_1", "train_1_a_2", "train_2_a_1"]
    assert ds.dropped == 2
    item = ds[2]
    assert item["volume"].shape == (4, 8, 8) and int(item["volume"][0, 0, 0]) == 2
    assert item["text"] == "Emphysema." and item["labels"].shape == (18,)
    batch = collate_ct_report([ds[0], ds[1]])
    assert batch["volume"].shape == (2, 4, 8, 8) and batch["labels"].shape == (2, 18)
    subset = CTReportDataset(export / "v.h5", export / "reports.csv", names=["train_2_a_1.nii.gz"])
    assert subset.names == ["train_2_a_1"] and subset[0]["labels"] is None
    assert len(CTReportDataset(export / "v.h5", export / "reports.csv", require_text=False)) == 5


def test_dataset_errors(export, tmp_path):
    with pytest.raises(InputNotFoundError):
        CTReportDataset(tmp_path / "missing.h5", export / "reports.csv")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(CorruptFileError, match="bad.h5"):
        CTReportDataset(tmp_path / "bad.h5", export / "reports.csv")


def test_patient_split_keeps_patients_together_and_is_seeded():
    names = [f"train_{p}_{s}_{r}" for p in range(300) for s in "ab" for r in (1, 2) if (p + r) % 3]
    train, val = patient_split(names, target_val_size=100, seed=42)
    assert 100 <= len(val) <= 104
    assert {patient_id(n) for n in train}.isdisjoint({patient_id(n) for n in val})
    assert sorted(train + val) == sorted(names)
    assert patient_split(names, 100, 42) == (train, val)
    assert patient_split(names, 100, 7)[1] != val


def test_unparseable_names_are_an_error_naming_the_file_not_one_patient_each(tmp_path):
    # issue 22 point 3: "case-7" used to become its own patient silently
    with h5py.File(tmp_path / "v.h5", "w") as h5:
        for name in ("case-7", "case-8"):
            h5.create_dataset(name, data=np.zeros((2, 4, 4), np.uint8))
    with open(tmp_path / "reports.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["VolumeName", "Findings_EN"], ["case-7", "a."], ["case-8", "b."]])
    ds = CTReportDataset(tmp_path / "v.h5", tmp_path / "reports.csv")
    with pytest.raises(PatientIdError, match=r"v\.h5: 2 of 2 volume names do not name their patient: 'case-7'"):
        _ = ds.patients
    with pytest.raises(PatientIdError, match="case-7"):
        patient_split(ds.names, target_val_size=1)
    with pytest.raises(PatientIdError):
        patient_id("scan.nii.gz")
    with pytest.raises(PatientIdError) as info:
        _ = ds.patients
    assert str(tmp_path) not in str(info.value)  # the file's name, not a server path


@pytest.mark.parametrize("column", [None, "Subject"])
def test_explicit_patient_column_decides(tmp_path, column):
    names = ["scanA", "scanB", "scanC", "scanD"]
    owner = {"scanA": "P1", "scanB": "P1", "scanC": "P2", "scanD": "P3"}
    with h5py.File(tmp_path / "v.h5", "w") as h5:
        for name in names:
            h5.create_dataset(name, data=np.zeros((2, 4, 4), np.uint8))
    col = column or "PatientID"
    with open(tmp_path / "reports.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["VolumeName", col, "Findings_EN"], *[[n, owner[n], "x."] for n in names]])
    ds = CTReportDataset(tmp_path / "v.h5", tmp_path / "reports.csv", patient_column=column)
    assert ds.patients == ["P1", "P1", "P2", "P3"]
    for seed in range(6):
        train, val = patient_split(ds.names, target_val_size=1, seed=seed, patients=ds.patient_map)
        assert {owner[n] for n in train}.isdisjoint({owner[n] for n in val})
    with pytest.raises(PatientIdError, match="no patient column 'Nope'"):
        CTReportDataset(tmp_path / "v.h5", tmp_path / "reports.csv", patient_column="Nope")


@pytest.mark.parametrize("prefix", ["held_", "heldout_x_", "held", ""])
def test_prefixed_ct_rate_names_keep_rescans_of_a_patient_together(prefix):
    # `clip synthetic --prefix held_` names: held_train_0_a_1, held_train_0_a_2 are one patient
    names = [f"{prefix}train_{p}_a_{r}" for p in range(20) for r in (1, 2)]
    assert patient_id(names[0]) == f"{prefix}train_0" and patient_id(names[1]) == f"{prefix}train_0"
    for seed in range(5):
        train, val = patient_split(names, target_val_size=9, seed=seed)
        assert {patient_id(n) for n in train}.isdisjoint({patient_id(n) for n in val})
        assert len(val) % 2 == 0  # whole patients (two scans each)
    assert patient_ids(["x/valid_3_b_2.nii.gz", "ts__train_9_a"]) == ["valid_3", "train_9"]
