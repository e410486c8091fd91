"""Issue #13: salted UID hashing (installation salt, ``ctlens deid --salt``) and PS3.15 Clean Descriptors.

The reader's meta keeps no free text from the headers (descriptions, contrast agent, the series label in
``series_selection`` and warnings) beyond allow-listed anatomical/technical words, while series selection by a
description word still works on the raw headers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from ctlens.io.deid import deidentify_dataset
from ctlens.io.uid_hash import deidentify_meta, hash_uid

STUDY_UID = "1.2.826.0.1.3680043.8.498.11111111111111111111"
SERIES_UID = "1.2.826.0.1.3680043.8.498.22222222222222222222"

# --------------------------------------------------------------------------------------------------------------
# Issue #13: salted UID hashing and PS3.15 Clean Descriptors in the reader's meta
# --------------------------------------------------------------------------------------------------------------


def test_uid_hash_salt_same_and_different(monkeypatch: pytest.MonkeyPatch) -> None:
    from ctlens.io.uid_hash import installation_salt, set_installation_salt

    uids = [STUDY_UID, SERIES_UID, "1.2.3", "9" * 60]
    for uid in uids:
        assert hash_uid(uid, "site-a") == hash_uid(uid, "site-a") != hash_uid(uid, "site-b")
        assert len(hash_uid(uid, "site-a")) <= 64 and hash_uid(uid, "site-a").startswith("2.25.")
    assert len({hash_uid(u, "s") for u in uids}) == len(uids)
    monkeypatch.setattr("ctlens.io.uid_hash._installation_salt", None)
    monkeypatch.setenv("CTLENS_UID_SALT", "from-env")
    assert installation_salt() == "from-env" and hash_uid("1.2.3") == hash_uid("1.2.3", "from-env")
    set_installation_salt("service-secret")
    assert hash_uid("1.2.3") == hash_uid("1.2.3", "service-secret") != hash_uid("1.2.3", "from-env")
    ds = Dataset()
    ds.StudyInstanceUID = STUDY_UID
    deidentify_dataset(ds)  # no salt given: the installation's
    assert ds.StudyInstanceUID == hash_uid(STUDY_UID, "service-secret")


def test_cli_deid_salt(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file
    from typer.testing import CliRunner

    from ctlens.cli.main import app

    ct_file = Path(get_testdata_file("CT_small.dcm"))
    study_uid = str(pydicom.dcmread(ct_file).StudyInstanceUID)
    runner = CliRunner()
    uids = {}
    for salt in ("one", "one", "two"):
        out = tmp_path / f"{salt}-{len(uids)}.dcm"
        result = runner.invoke(app, ["deid", str(ct_file), str(out), "--salt", salt])
        assert result.exit_code == 0, result.output
        uids[out.name] = str(pydicom.dcmread(out).StudyInstanceUID)
    first, second, third = uids.values()
    assert first == second == hash_uid(study_uid, "one") != third == hash_uid(study_uid, "two")


@pytest.mark.parametrize(
    ("text", "kernel", "expected"),
    [
        ("Thorax 1.0 B70f", "B70f", "Thorax 1.0 B70f"),
        ("DOE^JOHN CT CHEST W/O CONTRAST", "", "CT CHEST WO CONTRAST"),
        ("ABD/PELVIS PORTAL VENOUS 5 mm 2024-01-02", "", "ABD PELVIS PORTAL VENOUS 5 mm"),
        ("Acc 12345678 MRN 0042 LUNG 1.25MM", "", "LUNG 1.25MM"),
        ("Head axial 0.625 ADMIRE dr. Smith 01.02.24", "", "Head axial 0.625 ADMIRE"),
        ("Scout 120kV", "", "Scout 120kV"),
        ("Jane Roe", "", ""),
        ("", "", ""),
    ],
)
def test_clean_descriptor_keeps_only_allowed_words(text: str, kernel: str, expected: str) -> None:
    from ctlens.io.clean_descriptor import clean_descriptor

    assert clean_descriptor(text, extra_words=[kernel] if kernel else []) == expected
    assert clean_descriptor(expected, extra_words=[kernel] if kernel else []) == expected  # idempotent


def test_deidentify_meta_cleans_free_text_and_series_labels() -> None:
    label = "#1 'Roe^Jane CHEST it's 1.25MM' (CT, axial, 8 slices 32x32, kernel B30f)"
    meta = {
        "kernel": "B30f",
        "contrast_agent": "OMNIPAQUE by Dr Roe IV",
        "series_selection": f"picked {label} by description",
        "warnings": [f"series {label}: uneven spacing", "no label here, Roe's note"],
        "protocol": "Roe CHEST",
        "image_comments": "Roe",
        "nested": {"description": "CHEST Roe"},
    }
    out = deidentify_meta(meta)
    assert "Roe" not in json.dumps({k: v for k, v in out.items() if k != "warnings"})
    assert out["series_selection"] == "picked #1 'CHEST 1.25MM' (CT, axial, 8 slices 32x32, kernel B30f) by description"
    assert out["warnings"][0].startswith("series #1 'CHEST 1.25MM' (CT") and out["contrast_agent"] == "IV"
    assert out["protocol"] == "CHEST" and out["nested"] == {"description": "CHEST"} and "image_comments" not in out
    assert deidentify_meta(out) == out


def test_reader_meta_has_no_descriptor_text_and_selection_uses_raw_headers(tmp_path: Path) -> None:
    from dicom_factory import write_ct_series

    from ctlens.io.dicom_reader import read_dicom

    marker = "PHIMARKER"
    for i, word in enumerate(("alpha", "bravo")):
        truth = write_ct_series(
            tmp_path / "dcm" / word,
            n_slices=4,
            rows=16,
            cols=16,
            series_uid=f"1.2.826.0.1.3680043.8.498.99{i}",
            description=f"{marker} CHEST {word} 2.5MM",
            kernel="B30f",
        )
        for path in truth.paths:
            ds = pydicom.dcmread(path)
            ds.ContrastBolusAgent = f"{marker} IV CONTRAST"
            ds.save_as(path)
    volume = read_dicom(tmp_path / "dcm", series="bravo")  # a word the cleaned descriptor drops
    assert volume.meta["series_uid"] == hash_uid("1.2.826.0.1.3680043.8.498.991")
    text = json.dumps(volume.meta, default=str)
    assert marker not in text and "bravo" not in text
    assert "'CHEST 2.5MM'" in volume.meta["series_selection"] and volume.meta["contrast_agent"] == "IV CONTRAST"


def test_installation_salt_reaches_spawned_workers() -> None:
    """A salt set in the service process is the one its spawned workers hash with (cache builds, HDF5 exports)."""
    import multiprocessing
    import os

    from ctlens.io.uid_hash import SALT_ENV, hash_uid, set_installation_salt

    set_installation_salt(None)  # the environment as it was before any service context of this process
    before = os.environ.get(SALT_ENV)
    set_installation_salt("installation-secret")
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            child = pool.apply(hash_uid, ("1.2.840.1",))
        assert child == hash_uid("1.2.840.1") == hash_uid("1.2.840.1", "installation-secret")
    finally:
        set_installation_salt(None)
    assert os.environ.get(SALT_ENV) == before
