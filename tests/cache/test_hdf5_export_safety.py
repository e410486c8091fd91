"""HDF5 export: a SIGKILLed export's temporary files are cleaned by the next one, and hashed dataset names."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dicom_factory as fac
import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import ctlens
from ctlens.cache.hdf5_export import _export_lock, export_hdf5, hashed_name, names_csv_path
from ctlens.core.errors import CacheBusyError
from ctlens.core.volume import Volume

EXPORT = """
import sys
from ctlens.cache.hdf5_export import export_hdf5
export_hdf5(sys.argv[1], sys.argv[2], target_shape=(48, 96, 96), num_workers=0, progress=False)
print("finished")
"""


def _ct(shape: tuple[int, int, int] = (24, 64, 64), value: int = 60) -> Volume:
    ct = np.full(shape, -1000, np.int16)
    ct[2:-2, 8:-8, 8:-8] = value
    ct[shape[0] // 2, 20, 20] = 1500
    return Volume(ct, spacing=(3.0, 0.8, 0.8))


def test_sigkilled_export_leaves_temp_that_the_next_export_removes(tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    out.mkdir()
    inputs.mkdir()
    for i in range(8):
        ctlens.save(_ct((40, 160, 160), 40 + i), inputs / f"ct{i}.nii.gz")
    keep = [out / ".v.h5.notes", out / ".other.h5.abcd1234.tmp"]  # look alike, are not ours: must survive
    keep[0].write_text("user file")
    keep[1].mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", EXPORT, str(inputs), str(out / "v.h5")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    try:
        temps: list[Path] = []
        while proc.poll() is None and time.monotonic() < deadline:
            temps = [p for p in out.glob(".v.h5.*.tmp") if (p / "v.h5").is_file() and (p / "v.h5").stat().st_size]
            if temps:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the export ended before the kill: {stdout!r} {stderr[-2000:]!r}"
    left = sorted(p.name for p in out.iterdir())
    assert "v.h5" not in left and ".v.h5.lock" in left, left  # killed mid-way: no output, its temp and lock remain
    assert [p.name for p in out.glob(".v.h5.*.tmp")] == [temps[0].name]

    report = export_hdf5(inputs, out / "v.h5", target_shape=(16, 32, 32), num_workers=0, progress=False)
    assert report.stale_removed == 1 and len(report.written) == 8
    assert sorted(p.name for p in out.iterdir()) == sorted(["v.h5", *(p.name for p in keep)])
    with h5py.File(out / "v.h5", "r") as h5:
        assert sorted(h5.keys()) == [f"ct{i}" for i in range(8)]


def test_a_second_export_to_the_same_file_is_refused_and_cleans_nothing(tmp_path: Path) -> None:
    ctlens.save(_ct(), tmp_path / "ct.nii.gz")
    out = tmp_path / "v.h5"
    live = tmp_path / ".v.h5.live0001.tmp"  # the running export's temp folder
    with _export_lock(out):
        live.mkdir()
        with pytest.raises(CacheBusyError, match="another export is writing"):
            export_hdf5(tmp_path, out, target_shape=(8, 16, 16), num_workers=0, progress=False)
        assert live.is_dir() and not out.exists()
    report = export_hdf5(tmp_path, out, target_shape=(8, 16, 16), num_workers=0, progress=False)
    assert report.stale_removed == 1 and not live.exists() and not (tmp_path / ".v.h5.lock").exists()


PATIENT_WORDS = ("Doe_Jane", "Roe_Richard_1234567", "Synthetic^Patient", "SYN-PAT-001", "19700101", "Nowhere Hospital")


def _patient_inputs(root: Path) -> None:
    """Folders named after patients, as they often are: a NIfTI, a DICOM series with PHI headers, a broken file."""
    (root / "Doe_Jane").mkdir(parents=True)
    ctlens.save(_ct(), root / "Doe_Jane" / "ct.nii.gz")
    (root / "Doe_Jane" / "Doe_Jane_followup.nii.gz").write_bytes(b"\x1f\x8b not gzip")
    fac.write_ct_series(root / "Roe_Richard_1234567" / "chest", n_slices=6, description="Roe chest")


def test_hashed_names_keep_paths_out_of_the_file_and_in_the_local_mapping(tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _patient_inputs(inputs)
    out.mkdir()
    report = export_hdf5(
        inputs, out / "v.h5", out / "meta.csv", target_shape=(8, 16, 16), num_workers=0, progress=False,
        name_mode="hash",
    )  # fmt: skip
    mapping_file = names_csv_path(out / "v.h5")
    assert report.names_csv == mapping_file == out / "v.names.csv"
    assert sorted(p.name for p in out.iterdir()) == ["meta.csv", "v.h5", "v.names.csv"]
    rows = list(csv.DictReader(mapping_file.open()))
    by_source = {r["source"]: r for r in rows}
    assert set(by_source) == {"Doe_Jane/ct.nii.gz", "Doe_Jane/Doe_Jane_followup.nii.gz", "Roe_Richard_1234567/chest"}
    salt = rows[0]["salt"]
    assert len(salt) == 32 and {r["salt"] for r in rows} == {salt}
    for source, row in by_source.items():
        assert row["name"] == hashed_name(source, salt) and re.fullmatch(r"[0-9a-f]{16}", row["name"])
    assert by_source["Doe_Jane/Doe_Jane_followup.nii.gz"]["status"] == "failed"
    assert by_source["Doe_Jane/Doe_Jane_followup.nii.gz"]["reason"]
    good = sorted(r["name"] for r in rows if r["status"] == "ok")
    assert report.written == good and len(good) == 2

    with h5py.File(out / "v.h5", "r") as h5:
        assert sorted(h5.keys()) == good and h5.attrs["name_mode"] == "hash"
        failures = json.loads(h5.attrs["failures"])
        assert [f["name"] for f in failures] == [by_source["Doe_Jane/Doe_Jane_followup.nii.gz"]["name"]]
        assert failures[0]["source"] == "" and failures[0]["reason"]
        for name in good:
            assert "source" not in h5[name].attrs
    meta = list(csv.DictReader((out / "meta.csv").open()))
    assert {r["name"] for r in meta} == {r["name"] for r in rows} and {r["source"] for r in meta} == {""}
    blob = (out / "v.h5").read_bytes() + (out / "meta.csv").read_bytes()
    for word in (*PATIENT_WORDS, "Roe", str(tmp_path), "chest", "ct.nii"):
        assert word.encode() not in blob, word
    # the mapping is the one local file that has them
    assert b"Doe_Jane" in mapping_file.read_bytes()

    # the same salt gives the same names (stable across exports); another salt, other names
    again = export_hdf5(
        inputs, out / "v2.h5", target_shape=(8, 16, 16), num_workers=0, progress=False, name_mode="hash",
        hash_salt=salt,
    )  # fmt: skip
    assert again.written == good
    other = export_hdf5(
        inputs, out / "v3.h5", target_shape=(8, 16, 16), num_workers=0, progress=False, name_mode="hash",
        hash_salt="another secret",
    )  # fmt: skip
    assert not set(other.written) & set(good)


def test_path_names_stay_the_default_and_absolute_paths_never_enter_the_file(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _patient_inputs(inputs)
    export_hdf5(inputs, tmp_path / "v.h5", target_shape=(8, 16, 16), num_workers=0, progress=False)
    assert not names_csv_path(tmp_path / "v.h5").exists()
    with h5py.File(tmp_path / "v.h5", "r") as h5:
        assert sorted(h5.keys()) == ["Doe_Jane__ct", "Roe_Richard_1234567__chest"]  # names leave with the file
        assert h5.attrs["name_mode"] == "path"
    assert str(tmp_path).encode() not in (tmp_path / "v.h5").read_bytes()


def test_cli_hash_names(tmp_path: Path) -> None:
    from ctlens.cli.main import app

    inputs = tmp_path / "in"
    _patient_inputs(inputs)
    out = tmp_path / "v.h5"
    args = ["preprocess-h5", "-i", str(inputs), "-o", str(out), "--target-shape", "8", "16", "16", "--num-workers", "0"]
    result = CliRunner().invoke(
        app, [*args, "--hash-names", "--hash-salt", "k", "--names-csv", str(tmp_path / "map.csv")],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "keep it locally" in " ".join(result.output.split())  # rich may wrap the line
    progress_lines = [line for line in result.output.splitlines() if "HDF5 export" in line]
    assert progress_lines and not any("Roe_Richard" in line for line in progress_lines)  # no path on the bar
    rows = list(csv.DictReader((tmp_path / "map.csv").open()))
    with h5py.File(out, "r") as h5:
        assert sorted(h5.keys()) == sorted(hashed_name(r["source"], "k") for r in rows if r["status"] == "ok")
