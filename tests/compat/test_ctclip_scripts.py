"""Seed 003 (3D CLIP on CT-RATE): a CT-RATE folder made from a real DICOM series preprocesses to the same HDF5 as
the DICOM (either NIfTI layout, odd but legal orientation), and the seed-flag scripts train and evaluate on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from ctrate_factory import META_COLUMNS, flipped, write_csv, write_ct_rate_volume
from seed_data import dicom_series_dirs

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.io.ct_rate import load_ct_rate

SHAPE = ("32", "64", "64")  # the tiny model's input shape


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"ctlens.compat.ctclip.{module}", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def source() -> tuple[Path, Volume]:
    from ctlens.io.loader import load

    dirs = dicom_series_dirs()
    if not dirs:
        pytest.skip("no DICOM series in the shared data")
    folder = next((d for d in dirs if "lung" in str(d).lower()), dirs[0])
    return folder, load(folder)


def _first(path: Path) -> np.ndarray:
    with h5py.File(path) as h5:
        names = sorted(h5)
        return {n: h5[n][()] for n in names}


@pytest.mark.shared_data
@pytest.mark.parametrize("axes", ["yxz", "xyz"])
def test_ct_rate_folder_preprocesses_like_its_dicom(source, tmp_path: Path, axes: str) -> None:
    folder, volume = source
    data = tmp_path / "ct_volumes"
    (data / "train_1" / "train_1_a").mkdir(parents=True)
    rows = [
        write_ct_rate_volume(volume, data / "train_1" / "train_1_a" / "train_1_a_1.nii.gz", axes),
        write_ct_rate_volume(flipped(volume), data / "train_1" / "train_1_a" / "train_1_a_2.nii.gz", axes, -8192),
    ]
    write_csv(tmp_path / "train_metadata.csv", META_COLUMNS, rows)
    done = _run(
        "run_preprocess", "--ct_data_path", str(data), "--ct_out_path", str(tmp_path / "ct.h5"),
        "--metadata_path", str(tmp_path / "train_metadata.csv"), "--target_shape", *SHAPE,
        "--num_workers", "0", "--slide_b2u", "True", "--ct_rate_axes", axes, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    done = _run(
        "run_preprocess", "--ct_data_path", str(folder), "--ct_out_path", str(tmp_path / "dicom.h5"),
        "--target_shape", *SHAPE, "--num_workers", "0", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    (ref,) = _first(tmp_path / "dicom.h5").values()
    got = _first(tmp_path / "ct.h5")
    assert len(got) == 2
    for name, arr in got.items():
        assert arr.shape == ref.shape
        diff = float(np.abs(arr.astype(float) - ref.astype(float)).mean())
        assert diff < 1.0, f"{name}: mean difference {diff:.3f} grey levels"
    wrong = "xyz" if axes == "yxz" else "yxz"  # the other layout must not pass silently
    misread = load_ct_rate(data / "train_1" / "train_1_a" / "train_1_a_1.nii.gz", rows[0], axes=wrong)
    assert misread.shape != volume.shape or not np.array_equal(misread.array, volume.array)


def test_reader_applies_rescale_and_geometry(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1500, (5, 7, 9)).astype(np.int16)
    direction = np.column_stack([[0, 0, -1.0], [0, 1.0, 0], [-1.0, 0, 0]])  # feet-first-like, x reversed
    vol = Volume(arr, (2.5, 0.7, 0.8), (10.0, -20.0, 30.0), direction)
    for axes in ("yxz", "xyz"):
        row = write_ct_rate_volume(vol, tmp_path / f"v_{axes}.nii.gz", axes, intercept=-1024)
        back = load_ct_rate(tmp_path / f"v_{axes}.nii.gz", row, axes=axes)
        np.testing.assert_array_equal(back.array, arr)
        np.testing.assert_allclose(back.affine, vol.affine, atol=1e-9)
        assert back.array.dtype == np.int16
    row["RescaleSlope"] = "0.5"
    assert load_ct_rate(tmp_path / "v_xyz.nii.gz", row, axes="xyz").array.dtype == np.float32


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    vol = Volume(np.zeros((3, 4, 4), np.int16))
    row = write_ct_rate_volume(vol, tmp_path / "valid_1_a_1.nii.gz")
    write_csv(tmp_path / "m.csv", META_COLUMNS, [row])
    with pytest.raises(InputNotFoundError, match="valid_2_a_1.nii.gz.*no row for VolumeName 'valid_2_a_1'"):
        write_ct_rate_volume(vol, tmp_path / "valid_2_a_1.nii.gz")
        load_ct_rate(tmp_path / "valid_2_a_1.nii.gz", tmp_path / "m.csv")
    with pytest.raises(CorruptFileError, match="valid_1_a_1.nii.gz.*ImageOrientationPatient"):
        load_ct_rate(tmp_path / "valid_1_a_1.nii.gz", row | {"ImageOrientationPatient": "[1, 0, 0]"})
    (tmp_path / "bad.csv").write_text("name,value\nx,1\n")
    with pytest.raises(CorruptFileError, match="bad.csv.*missing column"):
        load_ct_rate(tmp_path / "valid_1_a_1.nii.gz", tmp_path / "bad.csv")


def _training_folder(volume: Volume, root: Path, split: str = "train", first_patient: int = 1) -> None:
    """Eight CT-RATE volumes of four patients (slabs of the real series), reports and labels."""
    data = root / ("ct_volumes" if split == "train" else f"{split}_volumes")
    data.mkdir()
    meta, reports, labels = [], [], []
    nz = volume.shape[0]
    for k in range(8):
        patient, scan = k // 2 + first_patient, "ab"[k % 2]
        name = f"{split}_{patient}_{scan}_1.nii.gz"
        start = (k * 3) % max(1, nz - 12)
        slab = Volume(volume.array[start : start + 12], volume.spacing, tuple(volume.world((start, 0, 0))),
                      volume.direction)  # fmt: skip
        meta.append(write_ct_rate_volume(slab, data / name))
        present = k % 2 == 0
        text = "Emphysema is seen in both lungs." if present else "The lungs are clear."
        reports.append({"VolumeName": name, "Findings_EN": text, "Impressions_EN": text})
        labels.append({"VolumeName": name, "Emphysema": int(present), "Lung nodule": int(k % 3 == 0)})
    write_csv(root / f"{split}_metadata.csv", META_COLUMNS, meta)
    write_csv(root / f"{split}_reports.csv", ["VolumeName", "Findings_EN", "Impressions_EN"], reports)
    write_csv(root / f"{split}_predicted_labels.csv", ["VolumeName", "Emphysema", "Lung nodule"], labels)


@pytest.mark.shared_data
def test_seed_scripts_train_and_evaluate(source, tmp_path: Path) -> None:
    _, volume = source
    _training_folder(volume, tmp_path)
    done = _run(
        "run_preprocess", "--ct_data_path", "ct_volumes", "--ct_out_path", "ct_volumes.h5",
        "--metadata_path", "train_metadata.csv", "--target_shape", *SHAPE, "--num_workers", "0", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    common = ["--ct_filepath", "ct_volumes.h5", "--txt_filepath", "train_reports.csv", "--batch_size", "2"]
    refused = _run("run_train", *common, "--dinov2_model_name", "dinov2_vits14", "--model", "ctclip-tiny",
                   "--out_dir", "refused", cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "facebook/dinov2-small" in refused.stderr and "looked in" in refused.stderr
    assert "--allow-random-init" in refused.stderr and not (tmp_path / "refused" / "model").exists()
    done = _run(
        "run_train", *common, "--epochs", "1", "--max_steps", "2", "--warmup_steps", "1", "--model", "ctclip-tiny",
        "--dinov2_model_name", "dinov2_vits14", "--allow-random-init", "--do_validate", "True",
        "--valid_interval", "1", "--val_label_path", "train_predicted_labels.csv", "--val_ct_filepath",
        "ct_volumes.h5", "--val_size", "4", "--num_workers", "0", "--context_length", "64", "--out_dir", "run",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "random init (allowed)" in done.stdout and "trained 2 steps" in done.stdout
    assert json.loads((tmp_path / "run" / "model_config.json").read_text())["text"]["max_length"] == 64
    leaked = _run(
        "eval", "--model_path", "run/model", "--test_data", "ct_volumes.h5", "--test_labels",
        "train_predicted_labels.csv", "--n_boot", "20", "--val_fraction", "0.5", "--out_dir", "leak", cwd=tmp_path,
    )  # fmt: skip
    assert leaked.returncode == 2 and "Traceback" not in leaked.stderr, leaked.stderr + leaked.stdout  # #22
    assert " share " in leaked.stderr and "patient" in leaked.stderr, leaked.stderr
    _training_folder(volume, tmp_path, split="valid", first_patient=11)  # held-out patients
    done = _run(
        "run_preprocess", "--ct_data_path", "valid_volumes", "--ct_out_path", "valid_volumes.h5",
        "--metadata_path", "valid_metadata.csv", "--target_shape", *SHAPE, "--num_workers", "0", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    done = _run(
        "eval", "--model_path", "run/model", "--test_data", "valid_volumes.h5", "--test_labels",
        "valid_predicted_labels.csv", "--n_boot", "20", "--val_fraction", "0.5", "--out_dir", "eval", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["mean_auroc"] <= 1.0 and "held-out test volumes" in done.stdout


def test_split_validation_keeps_patients_whole(tmp_path: Path) -> None:
    from ctlens.compat.ctclip.split_validation import main

    names = [f"valid_{p}_{s}_1.nii.gz" for p in range(1, 21) for s in "ab"]
    write_csv(tmp_path / "validation_reports.csv", ["VolumeName", "Findings_EN"],
              [{"VolumeName": n, "Findings_EN": "x"} for n in names])  # fmt: skip
    write_csv(tmp_path / "valid_predicted_labels.csv", ["VolumeName", "Emphysema"],
              [{"VolumeName": n, "Emphysema": 0} for n in names])  # fmt: skip
    assert main(["--data_dir", str(tmp_path), "--target_val_size", "10", "--seed", "1"]) == 0
    summary = json.loads((tmp_path / "split_summary.json").read_text())
    assert summary["validation_volumes"] + summary["test_volumes"] == 40 and summary["validation_volumes"] >= 10
    first = (tmp_path / "test_reports.csv").read_text()
    assert main(["--data_dir", str(tmp_path), "--target_val_size", "10", "--seed", "1"]) == 0  # reads originals
    assert (tmp_path / "test_reports.csv").read_text() == first
    val = {line.split("_")[1] for line in (tmp_path / "validation_reports.csv").read_text().splitlines()[1:]}
    test = {line.split("_")[1] for line in first.splitlines()[1:]}
    assert val and test and not val & test
    assert main(["--data_dir", str(tmp_path / "nowhere")]) == 2
