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
    collate_ct_report,
    patient_id,
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
