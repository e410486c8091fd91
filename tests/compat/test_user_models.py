"""User classifiers (ScanSage's models/*.h5, and *.onnx): what they are fed in every layout, what comes back, and
broken files as warnings (real Keras 3 on torch and real onnxruntime, tiny models built here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import keras_mean_model, onnx_mean_max_model

from ctlens.analysis.user_model_input import fit_input, input_layout
from ctlens.analysis.user_models import NOTE, find_model_files, run_user_models
from ctlens.core.volume import Volume

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # keras on torch


def _volume(modality: str = "CT") -> Volume:
    """6 slices of 40 x 30: each slice's top-left quadrant bright (MR: a ramp), the rest dark."""
    arr = np.full((6, 40, 30), -1000 if modality == "CT" else 0, np.int16)
    for k in range(6):
        arr[k, :20, :15] = 1000 if modality == "CT" else 100 + 10 * k + np.arange(15)
    return Volume(arr, modality=modality)


@pytest.mark.parametrize(
    ("shape", "kind", "layout"),
    [
        ((None, 20, 16, 3), "keras", "NHWC"),
        ((1, 3, 20, 16), "onnx", "NCHW"),
        ((1, 1, 20, 16), "onnx", "NCHW"),
        ((None, 20, 16, 1), "onnx", "NHWC"),
        ((None, 20, 16), "onnx", "NHW"),
        ((1, 4, 20, 16, 1), "keras", "NDHWC"),
        ((None, 1, 4, 20, 16), "onnx", "NCDHW"),
    ],
)
def test_every_layout_sees_the_image_upright(shape, kind, layout) -> None:
    x, used = fit_input(_volume(), shape, kind, key_slice=2, window=(2000.0, 0.0))
    assert used["layout"] == layout == input_layout(shape, kind)
    assert x.shape == tuple(1 if d is None else d for d in shape) and x.dtype == np.float32
    # move channels out of the way: (D?, H, W) per channel
    grids = {
        "NHWC": lambda a: [a[0, ..., c] for c in range(a.shape[-1])],
        "NCHW": lambda a: list(a[0]),
        "NHW": lambda a: [a[0]],
        "NDHWC": lambda a: [a[0, d, ..., c] for d in range(a.shape[1]) for c in range(a.shape[-1])],
        "NCDHW": lambda a: [a[0, c, d] for c in range(a.shape[1]) for d in range(a.shape[2])],
    }[layout](x)
    for g in grids:
        assert g.shape == (20, 16)
        assert g[:8, :6].min() > 0.95 and g[12:, 10:].max() < 0.05  # bright top-left, dark bottom-right
    if "D" not in layout:
        assert used["slice_1based"] == 3 and used["source"] == "key slice 3 of 6"


def test_dynamic_sizes_take_the_study_size_and_ranges_apply() -> None:
    vol = _volume("MR")
    x, used = fit_input(vol, (None, None, None, None), "onnx", input_range="0-255")
    assert x.shape == (1, 1, 40, 30) and used["source"] == "key slice 4 of 6"
    assert 254 <= x.max() <= 255 and x.min() == 0
    x, _ = fit_input(vol, ("n", 1, 40, 30), "onnx", input_range="-1-1")
    assert x.min() == -1 and x.max() == pytest.approx(1, abs=1e-3)
    x, used = fit_input(_volume(), (1, 1, 40, 30), "onnx", input_range="raw", dtype=np.int16)
    assert x.dtype == np.int16 and x.max() == 1000 and "window" not in used


def test_keras_h5_and_onnx_outputs_are_what_the_models_compute(tmp_path) -> None:
    models = tmp_path / "models"
    keras_mean_model(models / "brain_model.h5")
    onnx_mean_max_model(models / "lung_tumor.onnx", ["batch", 1, 32, 32])
    onnx_mean_max_model(models / "volume3d.onnx", [1, 1, 6, 16, 16])
    (models / "brain_model.json").write_text(json.dumps({"labels": ["bright", "dark"], "window": [2000, 0]}))
    (models / "readme.txt").write_text("not a model")
    vol = _volume()
    entries = run_user_models(vol, models, key_slice=0, window=(2000.0, 0.0))
    assert [e["file"] for e in entries] == ["brain_model.h5", "lung_tumor.onnx", "volume3d.onnx"]
    assert all(e["note"] == NOTE and "warning" not in e for e in entries), entries
    unit = (vol.array[0].astype(float) + 1000) / 2000  # the key slice through the [2000, 0] window
    keras_entry, onnx_entry, vol_entry = entries
    assert keras_entry["format"] == "keras" and keras_entry["input"]["shape"] == [1, 64, 48, 3]
    assert keras_entry["labels"]["bright"] == pytest.approx(unit.mean(), abs=0.02)
    assert keras_entry["labels"]["dark"] == pytest.approx(1 - unit.mean(), abs=0.02)
    assert onnx_entry["input"]["shape"] == [1, 1, 32, 32] and onnx_entry["input"]["slice_1based"] == 1
    outputs = {o["name"]: o["values"] for o in onnx_entry["outputs"]}
    assert outputs["mean"][0] == pytest.approx(unit.mean(), abs=0.02) and outputs["max"][0] == pytest.approx(1.0)
    whole = (vol.array.astype(float) + 1000) / 2000
    assert vol_entry["input"]["source"] == "whole volume (6 slices)"
    assert vol_entry["outputs"][0]["values"][0] == pytest.approx(whole.mean(), abs=0.02)
    assert len(entries[0]["sha256"]) == 16


def test_broken_and_unsupported_models_are_warnings_naming_the_file_only(tmp_path) -> None:
    models = tmp_path / "secret-server-folder" / "models"
    models.mkdir(parents=True)
    (models / "breast_tumor.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    (models / "empty.keras").write_bytes(b"")
    (models / "truncated.onnx").write_bytes(b"\x08\x07\x12")
    onnx_mean_max_model(models / "two_inputs.onnx", [1, 1, 8, 8], two_inputs=True)
    onnx_mean_max_model(models / "rank2.onnx", [1, 64])
    onnx_mean_max_model(models / "bad_sidecar.onnx", [1, 1, 8, 8])
    (models / "bad_sidecar.json").write_text("{not json")
    entries = run_user_models(_volume(), models)
    by_file = {e["file"]: e for e in entries}
    assert sorted(by_file) == sorted(p.name for p in find_model_files(models))
    for name, entry in by_file.items():
        assert entry["note"] == NOTE and "outputs" not in entry, entry
        assert name in entry["warning"] and "secret-server-folder" not in entry["warning"], entry
        assert "\n" not in entry["warning"] and len(entry["warning"]) <= 400
    assert "2 inputs" in by_file["two_inputs.onnx"]["warning"]
    assert "rank 2" in by_file["rank2.onnx"]["warning"]
    assert "not valid JSON" in by_file["bad_sidecar.onnx"]["warning"]


def test_a_changed_model_file_is_loaded_again(tmp_path) -> None:
    path = onnx_mean_max_model(tmp_path / "m.onnx", [1, 1, 8, 8])
    first = run_user_models(_volume(), tmp_path)[0]
    onnx_mean_max_model(path, [1, 1, 4, 4])
    second = run_user_models(_volume(), tmp_path)[0]
    assert first["input"]["shape"] == [1, 1, 8, 8] and second["input"]["shape"] == [1, 1, 4, 4]
    assert first["sha256"] != second["sha256"]


def test_no_folder_or_no_models_gives_nothing(tmp_path) -> None:
    assert run_user_models(_volume(), None) == [] and run_user_models(_volume(), tmp_path / "absent") == []
    assert run_user_models(_volume(), tmp_path) == []


def test_a_cached_study_is_brought_up_to_date_when_the_models_change(tmp_path) -> None:
    from ctlens.api.artifacts import write_artifacts
    from ctlens.api.processing import refresh_user_models

    study, models = tmp_path / "study", tmp_path / "models"
    result = {"kind": "dicom", "modality": "CT", "shape": [6, 40, 30], "findings": None}
    write_artifacts(study, _volume(), result, None, None, None)
    assert refresh_user_models(result, study, models) is None  # no models, none stored: nothing to do
    onnx_mean_max_model(models / "a.onnx", [1, 1, 8, 8])
    first = refresh_user_models(result, study, models)
    assert [e["file"] for e in first["user_models"]] == ["a.onnx"] and "warning" not in first["user_models"][0]
    assert json.loads((study / "result.json").read_text())["user_models"] == first["user_models"]
    assert refresh_user_models(first, study, models) is None  # up to date: not run again
    onnx_mean_max_model(models / "b.onnx", [1, 1, 4, 4])
    second = refresh_user_models(first, study, models)
    assert [e["file"] for e in second["user_models"]] == ["a.onnx", "b.onnx"]
    for path in models.iterdir():
        path.unlink()
    third = refresh_user_models(second, study, models)
    assert "user_models" not in third and "user_models_fingerprint" not in third
    assert refresh_user_models(result, tmp_path / "gone", models) is None
