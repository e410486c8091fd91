"""``ctlens prepare`` and ``ctlens preprocess-h5`` run as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dicom_factory as fac
import h5py
import nibabel as nib
import numpy as np
from PIL import Image

import ctlens
from ctlens.cache.hdf5_export import export_hdf5
from ctlens.core.volume import Volume
from ctlens.io.lps_ras import nifti_affine
from ctlens.preprocess import prepare_for_inference, to_model_grid


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ctlens", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


def test_prepare_ct_writes_model_grid_windows_mask_and_montage(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path / "s", n_slices=10, rows=48, cols=40, spacing=(3.0, 0.7, 0.7))
    out = tmp_path / "out"
    result = run_cli("prepare", tmp_path / "s", "--out", out, "--mode", "auto", "--slices", "4")
    assert result.returncode == 0, result.stderr
    assert "mode: ct (detected: modality tag 'CT')" in result.stdout
    vol = ctlens.load(tmp_path / "s")
    arrs, mask, view = prepare_for_inference(vol, mode="ct")
    grid = to_model_grid(vol, fill_value=-1024)
    for name in ("brain", "blood", "bone"):
        image = nib.load(out / f"{name}.nii.gz")
        np.testing.assert_allclose(image.affine, nifti_affine(grid), atol=1e-4)
        np.testing.assert_array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), arrs[name])
    saved_mask = nib.load(out / "mask.nii.gz")
    np.testing.assert_array_equal(np.asarray(saved_mask.dataobj).transpose(2, 1, 0), mask)
    summary = json.loads((out / "prepare.json").read_text())
    assert summary["axcodes"] == "IPR" and summary["nifti_axcodes"] == "RPI" and summary["view"] == view
    assert tuple(summary["shape"]) == grid.shape
    assert all(n % p == 0 for n, p in zip(grid.shape, (4, 16, 16), strict=True))
    with Image.open(out / "montage.png") as png:
        assert png.format == "PNG" and png.mode == "L"
        assert png.width > 4 * 100 and png.height > 4 * 100  # 4 rows (3 windows + mask) x 4 slices
        pixels = np.asarray(png)
    assert pixels.std() > 10  # not blank


def test_prepare_mr_and_explicit_mode(tmp_path: Path) -> None:
    mr = np.zeros((6, 40, 40), np.float32)
    mr[1:5, 8:32, 8:32] = 500.0
    ctlens.save(Volume(mr, spacing=(4.0, 1.0, 1.0), modality="MR"), tmp_path / "mr.nii.gz")
    result = run_cli("prepare", tmp_path / "mr.nii.gz", "--out", tmp_path / "o", "--mode", "mri")
    assert result.returncode == 0, result.stderr
    assert "mode: mri (given with --mode)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "mask.nii.gz",
        "montage.png",
        "mri.nii.gz",
        "prepare.json",
    ]
    from typer.testing import CliRunner

    from ctlens.cli.main import app

    bad = CliRunner().invoke(app, ["prepare", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "ctlens: error:" in bad.output and "missing.nii.gz" in bad.output
    assert not (tmp_path / "o2").exists()


def test_preprocess_h5_command(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path / "in" / "a" / "series", n_slices=6)
    (tmp_path / "in" / "empty.nii.gz").write_bytes(b"")
    out = tmp_path / "volumes.h5"
    meta = tmp_path / "meta.csv"
    args = ["--input", tmp_path / "in", "--output", out, "--metadata", meta, "--target-shape", "16", "32", "32"]
    result = run_cli("preprocess-h5", *args, "--num-workers", "0", "--slice-order", "u2b")
    assert result.returncode == 0, result.stderr
    assert "1 volume(s)" in result.stdout and "1 input(s) not exported" in result.stdout
    with h5py.File(out, "r") as h5:
        assert list(h5.keys()) == ["a__series"]
        assert h5["a__series"].shape == (16, 32, 32) and h5["a__series"].attrs["axcodes"] == "IAR"
    assert "empty,empty.nii.gz,failed," in meta.read_text()
    wrong = run_cli("preprocess-h5", *args, "--slice-order", "sideways")
    assert wrong.returncode == 2


def test_preprocess_h5_killed_midway_leaves_no_partial_file(tmp_path: Path) -> None:
    for i in range(8):
        fac.write_ct_series(tmp_path / "in" / f"s{i}", n_slices=12, rows=64, cols=64, seed=i)
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "ctlens", "preprocess-h5", "--input", str(tmp_path / "in"), "--output"]
    cmd += [str(out / "v.h5"), "--num-workers", "0", "--target-shape", "32", "64", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(".v.h5.*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the export finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert list(out.glob(".v.h5.*")), "killed while writing: its temporary folder is left"
    assert not (out / "v.h5").exists()  # never a partial file under the real name
    report = export_hdf5(tmp_path / "in", out / "v.h5", target_shape=(32, 64, 64), num_workers=0, progress=False)
    assert not report.failures
    with h5py.File(out / "v.h5", "r") as h5:
        assert sorted(h5.keys()) == [f"s{i}" for i in range(8)] and int(h5.attrs["n_volumes"]) == 8
