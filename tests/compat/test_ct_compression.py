"""CTScanCompressor: the earlier API on top of the codec (round trips, JSON export, stats, LLM payload)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctlens.compat.ct_compression import CTScanCompressor
from ctlens.core.errors import CorruptFileError
from ctlens.core.volume import Volume


def _volume() -> Volume:
    rng = np.random.default_rng(3)
    arr = np.full((4, 64, 64), -1000, np.int16)
    arr[:, 12:52, 12:52] = 40 + rng.integers(-30, 30, (4, 40, 40))
    arr[:, 28:36, 28:36] = 700
    return Volume(arr, spacing=(3.0, 0.8, 0.8), meta={"PatientName": "Doe^Jane", "manufacturer": "ACME"})


@pytest.mark.parametrize("suffix", [".ctz", ".json"])
def test_lossless_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    vol = _volume()
    comp = CTScanCompressor()
    enc = comp.encode_ct_series(vol)
    comp.save_encoded(enc, tmp_path / f"s{suffix}")
    back = comp.decode_ct_series(comp.load_encoded(tmp_path / f"s{suffix}"))
    np.testing.assert_array_equal(back.array, vol.array)
    assert "Doe" not in (tmp_path / f"s{suffix}").read_bytes().decode("latin-1")
    assert back.meta.get("manufacturer") == "ACME" and "PatientName" not in back.meta


def test_roi_mode_stats_and_bound(tmp_path: Path) -> None:
    vol = _volume()
    comp = CTScanCompressor(roi_percentile=80, compression_level=7, mode="roi", max_error=4)
    enc = comp.encode_ct_series(vol)
    stats = comp.get_stats()
    for key in ("raw_bytes", "encoded_bytes", "ratio", "roi_coverage", "max_error", "encode_seconds"):
        assert key in stats
    assert stats["ratio"] == pytest.approx(vol.array.nbytes / enc.nbytes)
    assert 0 < stats["roi_coverage"] < 1 and stats["max_error"] <= 4
    out = comp.decode_ct_series(enc).array.astype(int)
    mask = comp.detect_roi(vol)
    assert (out[mask] == vol.array[mask]).all()
    assert np.abs(out - vol.array).max() <= 4
    assert "decode_seconds" in comp.get_stats()


def test_load_encoded_rejects_damage(tmp_path: Path) -> None:
    comp = CTScanCompressor()
    comp.save_encoded(comp.encode_ct_series(_volume()), tmp_path / "s.ctz")
    data = bytearray((tmp_path / "s.ctz").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "s.ctz").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="s.ctz"):
        comp.load_encoded(tmp_path / "s.ctz")


def test_load_ct_series_reads_ctz(tmp_path: Path) -> None:
    comp = CTScanCompressor()
    comp.save_encoded(comp.encode_ct_series(_volume()), tmp_path / "s.ctz")
    assert comp.load_ct_series(tmp_path / "s.ctz").shape == (4, 64, 64)


def test_prepare_for_llm_builds_a_budgeted_deidentified_payload(tmp_path: Path) -> None:
    pytest.importorskip("ctlens.llm.payload")
    comp = CTScanCompressor()
    comp.save_encoded(comp.encode_ct_series(_volume()), tmp_path / "s.ctz")
    for source in (_volume(), tmp_path / "s.ctz"):
        payload = comp.prepare_for_llm(source, "Any mass?", "anthropic", token_budget=2000, progress=False)
        assert payload.images and payload.token_estimate <= payload.token_budget == 2000
        assert "Doe" not in payload.text
