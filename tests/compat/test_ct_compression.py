"""CTScanCompressor (seed 000): the seed's own code blocks run as written (import lines and data paths changed only)
on every shared DICOM series, the LLM examples against loopback fakes, and the guarantees behind them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_plain_llm import ANSWER, start_plain_fake
from seed_data import dicom_series_dirs, seed_python_blocks

from ctlens.compat.ct_compression import CTScanCompressor
from ctlens.core.errors import CorruptFileError
from ctlens.core.volume import Volume

IMPORT = "from ctlens.compat.ct_compression import CTScanCompressor"


def _blocks() -> list[str]:
    return [b.replace("from ct_compression import CTScanCompressor", IMPORT) for b in seed_python_blocks("000")]


def _volume() -> Volume:
    rng = np.random.default_rng(3)
    arr = np.full((4, 64, 64), -1000, np.int16)
    arr[:, 12:52, 12:52] = 40 + rng.integers(-30, 30, (4, 40, 40))
    arr[:, 28:36, 28:36] = 700
    return Volume(arr, spacing=(3.0, 0.8, 0.8), meta={"PatientName": "Doe^Jane", "manufacturer": "ACME"})


@pytest.fixture(scope="module")
def series_dirs() -> list[Path]:
    dirs = dicom_series_dirs()
    if not dirs:
        pytest.skip("no DICOM series in the shared data")
    return dirs


@pytest.mark.shared_data
def test_seed_quick_start_and_llm_examples_run_as_written(series_dirs, monkeypatch) -> None:
    blocks = _blocks()
    anthropic_fake, openai_fake = start_plain_fake("anthropic"), start_plain_fake("openai")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_fake.base_url)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_fake.base_url)
    try:
        for folder in series_dirs:
            ns: dict = {}
            exec(blocks[0].replace("path/to/dicom/folder", str(folder)), ns)  # quick start
            slices, metadata, encoded, payload = ns["slices"], ns["metadata"], ns["encoded"], ns["llm_payload"]
            assert len(slices) == len(metadata) >= 2 and slices[0].ndim == 2
            normal = np.asarray(metadata[0]["slice_direction"])
            along = [float(np.dot(m["image_position_patient"], normal)) for m in metadata]
            assert along == sorted(along), f"{folder}: slices not sorted by position"
            assert payload["prompt"].startswith("Question: Analyze this CT for pulmonary nodules")
            assert payload["base_image_base64"] and max(payload["image_size"]) <= 1568
            ns["ct_slice"] = slices[len(slices) // 2]
            exec(blocks[1], ns)  # detect_roi on one slice
            assert ns["roi_mask"].dtype == bool and ns["roi_mask"].shape == slices[0].shape
            exec(blocks[2], ns)  # Claude example
            path, headers, req = anthropic_fake.requests[-1]
            image, text = req["messages"][0]["content"]
            assert path == "/v1/messages" and req["model"] == "claude-3-5-sonnet-20241022"
            key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            assert key == "your-api-key" and ANSWER in str(ns["message"].content)
            assert image["source"]["data"] == ns["llm_payload"]["base_image_base64"]
            assert text["text"] == ns["llm_payload"]["prompt"].replace("\r", "")
            exec(blocks[3], ns)  # GPT-4V example
            path, headers, req = openai_fake.requests[-1]
            assert path == "/v1/chat/completions" and headers["authorization"] == "Bearer your-api-key"
            url = req["messages"][0]["content"][1]["image_url"]["url"]
            assert url == "data:image/png;base64," + ns["llm_payload"]["base_image_base64"]
            assert ns["response"].choices[0].message.content == ANSWER
            decoded = ns["compressor"].decode_ct_series(encoded)
            err = np.abs(np.stack(decoded).astype(int) - np.stack(slices).astype(int))
            assert err.max() <= ns["compressor"].max_error
    finally:
        anthropic_fake.stop()
        openai_fake.stop()


@pytest.mark.shared_data
def test_seed_advanced_blocks_custom_roi_and_many_series(series_dirs, tmp_path, monkeypatch) -> None:
    blocks = _blocks()
    ns: dict = {}
    exec(IMPORT, ns)
    exec(blocks[4], ns)
    assert (ns["compressor"].roi_percentile, ns["compressor"].compression_level) == (85, 9)
    exec(blocks[6], ns)
    assert (ns["compressor"].roi_percentile, ns["compressor"].compression_level) == (95, 9)
    for i, folder in enumerate(series_dirs[:2]):  # "./patient_*/CT_*/" as the seed globs it
        (tmp_path / f"patient_{i}").mkdir()
        (tmp_path / f"patient_{i}" / "CT_1").symlink_to(folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    exec("from pathlib import Path\n" + blocks[7], ns)  # the seed's block forgot this import
    outputs = sorted(tmp_path.glob("compressed_patient_*.json"))
    assert len(outputs) == min(2, len(series_dirs))
    back = ns["compressor"].decode_ct_series(ns["compressor"].load_encoded(outputs[0]))
    assert len(back) >= 2

    class HalfModel:  # the seed's "your_ml_model": marks the left half of every slice
        @staticmethod
        def predict(image):
            mask = np.zeros(image.shape, bool)
            mask[:, : image.shape[1] // 2] = True
            return mask

    ns["your_ml_model"] = HalfModel()
    exec(blocks[5], ns)
    custom = ns["CustomCompressor"](roi_percentile=95, compression_level=5)
    vol = _volume()
    slices, meta = custom.slices_of(vol)
    enc = custom.encode_ct_series(slices, meta)
    out = np.stack(custom.decode_ct_series(enc)).astype(int)
    assert np.array_equal(out[:, :, :32], vol.array[:, :, :32])  # the custom ROI is exact
    assert np.abs(out - vol.array).max() <= custom.max_error
    assert custom.get_stats().roi_coverage == pytest.approx(0.5)


def test_default_roi_is_exact_and_background_bounded() -> None:
    vol = _volume()
    comp = CTScanCompressor(roi_percentile=80, compression_level=7, max_error=4)
    enc = comp.encode_ct_series(vol)
    stats = comp.get_stats()
    assert stats.compression_ratio == pytest.approx(vol.array.nbytes / stats.compressed_size)
    assert 0 < stats.roi_coverage < 1 and stats.max_error <= 4
    out = np.stack(comp.decode_ct_series(enc)).astype(int)
    mask = np.stack([comp.detect_roi(s) for s in vol.array])
    assert (out[mask] == vol.array[mask]).all()
    assert np.abs(out - vol.array).max() <= 4
    assert "decode_time" in comp.get_stats()


def test_compression_level_chooses_the_coders() -> None:
    rng = np.random.default_rng(0)
    arr = (rng.normal(0, 40, (3, 96, 96)).cumsum(axis=2) / 10).astype(np.int16)
    sizes, backends = {}, {}
    for level in (1, 5, 9):
        comp = CTScanCompressor(compression_level=level, mode="lossless")
        comp.encode_ct_series(arr)
        sizes[level] = comp.get_stats().compressed_size
        backends[level] = set(comp.get_stats().codec["backends"])
    assert backends[1] == {"htj2k"} and backends[5] == {"jpegls"}
    assert sizes[9] <= min(sizes[1], sizes[5]) + 100 and sizes[1] != sizes[5]  # header lists more coders
    with pytest.raises(ValueError, match="compression_level"):
        CTScanCompressor(compression_level=12)


@pytest.mark.parametrize("suffix", [".ctz", ".json"])
def test_lossless_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    vol = _volume()
    comp = CTScanCompressor(mode="lossless")
    comp.save_encoded(comp.encode_ct_series(vol), tmp_path / f"s{suffix}")
    back = comp.decode_volume(comp.load_encoded(tmp_path / f"s{suffix}"))
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.spacing == vol.spacing
    assert "Doe" not in (tmp_path / f"s{suffix}").read_bytes().decode("latin-1")
    assert back.meta.get("manufacturer") == "ACME" and "PatientName" not in back.meta


def test_user_slices_and_metadata_keep_their_geometry() -> None:
    vol = _volume()
    slices, meta = CTScanCompressor.slices_of(vol)
    order = [2, 0, 3, 1]  # a user's list in any order: sorted back by position
    comp = CTScanCompressor(mode="lossless")
    back = comp.decode_volume(comp.encode_ct_series([slices[i] for i in order], [meta[i] for i in order]))
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine)
    with pytest.raises(ValueError, match="non-integer"):
        comp.encode_ct_series([s / 3.0 for s in slices], meta)


def test_load_encoded_rejects_damage(tmp_path: Path) -> None:
    comp = CTScanCompressor()
    comp.save_encoded(comp.encode_ct_series(_volume()), tmp_path / "s.json")
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["ctz_base64"] = (
        doc["ctz_base64"][:100] + ("A" if doc["ctz_base64"][100] != "A" else "B") + doc["ctz_base64"][101:]
    )
    (tmp_path / "s.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptFileError, match="s.json"):
        comp.load_encoded(tmp_path / "s.json")


def test_prepare_for_llm_is_one_claude_sized_png_and_deidentified() -> None:
    comp = CTScanCompressor()
    for question, window in (("Any pulmonary nodule?", "lung"), ("Liver lesion?", "mediastinum")):
        payload = comp.prepare_for_llm(comp.encode_ct_series(_volume()), question)
        assert payload["window"] == window and payload["media_type"] == "image/png"
        assert max(payload["image_size"]) <= 1568 and payload["token_estimate"] <= 2000
        assert "Doe" not in payload["prompt"] and question in payload["prompt"]
    long = Volume(np.random.default_rng(1).integers(-1000, 400, (300, 64, 64)).astype(np.int16))
    assert comp.prepare_for_llm(long, "Any mass?")["base_image_base64"]


def _run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ctlens.compat.ct_compression", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.shared_data
def test_command_line_writes_json(series_dirs, tmp_path: Path) -> None:
    done = _run_module(str(series_dirs[0]), "compressed_output.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Compression ratio" in done.stdout
    comp = CTScanCompressor()
    back = comp.decode_ct_series(comp.load_encoded(tmp_path / "compressed_output.json"))
    assert len(back) == len(json.loads((tmp_path / "compressed_output.json").read_text())["slice_metadata"])


def test_command_line_bad_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "note.txt").write_text("not a scan")
    done = _run_module("empty", "out.json", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctlens: error:") and "empty" in lines[0]
    assert not (tmp_path / "out.json").exists()
