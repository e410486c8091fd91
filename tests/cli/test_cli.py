"""The ``ctlens`` command line, run as a real subprocess: output, one-line errors, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dicom_factory as fac
import numpy as np
import pytest

import ctlens


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ctlens", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_info_lists_series_and_geometry(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path / "a", n_slices=6, description="small chest")
    fac.write_ct_series(tmp_path / "a", n_slices=9, description="bigger chest", kernel="B70f")
    result = run_cli("info", tmp_path / "a")
    assert result.returncode == 0, result.stderr
    assert "2 series" in result.stdout
    assert "bigger chest" in result.stdout and "small chest" in result.stdout
    assert "(9, 32, 32) voxels" in result.stdout


def test_convert_writes_nifti_equal_to_load(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path / "s", n_slices=5, shuffle_names=True)
    out = tmp_path / "out.nii.gz"
    result = run_cli("convert", tmp_path / "s", out)
    assert result.returncode == 0, result.stderr
    back = ctlens.load(out)
    assert np.array_equal(back.array, truth.hu)
    np.testing.assert_allclose(back.affine, truth.affine, atol=1e-4)


@pytest.mark.parametrize("kind", ["empty", "random", "traversal", "bomb"])
def test_bad_input_prints_one_line_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    if kind == "empty":
        bad = tmp_path / "empty.dcm"
        bad.write_bytes(b"")
    elif kind == "random":
        bad = fac.write_non_dicom(tmp_path / "noise.dcm")
    else:
        bad = tmp_path / f"{kind}.zip"
        fac.make_evil_zip(bad, kind=kind)
    out = tmp_path / "out" / "never.nii.gz"
    out.parent.mkdir()
    result = run_cli("convert", bad, out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ctlens: error:") and bad.name in lines[0]
    assert "Traceback" not in result.stderr
    assert list(out.parent.iterdir()) == []


def test_gantry_tilt_refused_by_cli(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path / "tilt", n_slices=6, tilt_deg=15.0)
    result = run_cli("convert", tmp_path / "tilt", tmp_path / "t.nii.gz", "--tilt", "refuse")
    assert result.returncode == 2
    assert "gantry tilt of 15.00 degrees" in result.stderr
    assert not (tmp_path / "t.nii.gz").exists()


def test_deid_cli_removes_identifiers(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path / "in", n_slices=3)
    import pydicom

    for path in truth.paths:
        ds = pydicom.dcmread(path)
        ds.PatientName = "Doe^Jane"
        ds.PatientID = "MRN-998877"
        ds.save_as(path)
    result = run_cli("deid", tmp_path / "in", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(written) == 3
    for path in written:
        data = path.read_bytes()
        assert b"Doe^Jane" not in data and b"MRN-998877" not in data
    assert np.array_equal(ctlens.load(tmp_path / "out").array, truth.hu)
