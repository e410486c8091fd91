"""Property tests of the .ctz codec: bit-exact lossless, ROI bound, random access, checksums catch damage."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctlens.codec import decode_slice, decode_volume, detect_roi, encode_volume, read_info
from ctlens.codec.container import CtzReader
from ctlens.core.errors import CorruptFileError, CTLensError, UnsupportedFormatError
from ctlens.core.volume import Volume

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def int16_volumes(draw: st.DrawFn) -> np.ndarray:
    """Random int16 volumes: full-range noise, narrow noise, or smooth CT-like ramps with noise."""
    z = draw(st.integers(1, 4))
    y = draw(st.integers(1, 24))
    x = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["full", "narrow", "ct"]))
    rng = np.random.default_rng(seed)
    if kind == "full":
        return rng.integers(-32768, 32768, (z, y, x)).astype(np.int16)
    if kind == "narrow":
        lo = draw(st.integers(-32768, 32000))
        return rng.integers(lo, lo + 700, (z, y, x)).astype(np.int16)
    base = np.linspace(-1024, 1500, y * x).reshape(y, x)
    vol = base[None] + rng.normal(0, 30, (z, y, x)) + np.arange(z)[:, None, None] * 7
    return np.clip(np.round(vol), -1024, 3071).astype(np.int16)


def _encode(vol: np.ndarray, **options: object) -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "v.ctz"
    encode_volume(Volume(vol, spacing=(2.0, 0.8, 0.8)), path, **options)
    return tmp, path


@SETTINGS
@given(
    vol=int16_volumes(),
    profile=st.sampled_from(["compact", "fast", "thorough", "small", "smallest"]),
    key=st.integers(0, 3),
    predict=st.sampled_from(["estimate", "measure", "intra"]),
)
def test_lossless_round_trip_is_bit_exact(vol: np.ndarray, profile: str, key: int, predict: str) -> None:
    tmp, path = _encode(vol, profile=profile, keyframe_interval=key, predict=predict)
    with tmp:
        out = decode_volume(path)
        assert out.array.dtype == vol.dtype
        np.testing.assert_array_equal(out.array, vol)
        assert read_info(path)["stats"]["encoded_bytes"] == path.stat().st_size
        k = int(np.random.default_rng(vol.size).integers(0, vol.shape[0]))
        np.testing.assert_array_equal(decode_slice(path, k), out.array[k])


@SETTINGS
@given(vol=int16_volumes(), max_error=st.integers(0, 20), percentile=st.floats(50, 95))
def test_roi_mode_exact_inside_bounded_outside(vol: np.ndarray, max_error: int, percentile: float) -> None:
    tmp, path = _encode(vol, mode="roi", max_error=max_error, roi_percentile=percentile, dilation_mm=1.0)
    with tmp:
        out = decode_volume(path).array.astype(np.int32)
        info = read_info(path)
        mask = detect_roi(vol, percentile, 1.0, spacing=(2.0, 0.8, 0.8))
        err = np.abs(out - vol)
        assert (err[mask] == 0).all()
        assert err.max(initial=0) <= max_error
        assert info["stats"]["max_error"] <= max_error == info["codec"]["max_error"]
        for k in range(vol.shape[0]):
            np.testing.assert_array_equal(decode_slice(path, k), out[k])


@pytest.fixture(scope="module")
def encoded_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rng = np.random.default_rng(7)
    vol = (rng.normal(0, 50, (5, 20, 20)) + np.linspace(-1000, 800, 400).reshape(20, 20)).astype(np.int16)
    path = tmp_path_factory.mktemp("ctz") / "ok.ctz"
    encode_volume(vol, path, keyframe_interval=2)
    return path.read_bytes()


@SETTINGS
@given(data=st.data())
def test_any_flipped_byte_is_caught(encoded_file: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(encoded_file) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(encoded_file)
    damaged[pos] ^= 1 << bit
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.ctz"
        path.write_bytes(bytes(damaged))
        expected = (CorruptFileError, UnsupportedFormatError) if 8 <= pos < 12 else CorruptFileError
        with pytest.raises(expected) as info:
            decode_volume(path)
        assert str(path) in str(info.value)


@SETTINGS
@given(data=st.data())
def test_truncated_file_is_caught(encoded_file: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(encoded_file) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cut.ctz"
        path.write_bytes(encoded_file[:cut])
        for call in (lambda: decode_volume(path), lambda: decode_slice(path, 0)):
            with pytest.raises(CorruptFileError, match="cut.ctz"):
                call()


def test_damaged_slice_named_in_random_access(encoded_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "s.ctz"
    path.write_bytes(encoded_file)
    rec = CtzReader(path).records[3]
    damaged = bytearray(encoded_file)
    damaged[rec.offset + rec.main_len // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptFileError, match="slice 3: checksum mismatch"):
        decode_slice(path, 3)
    with pytest.raises(CorruptFileError, match="whole-file checksum"):
        decode_volume(path)
    assert decode_slice(path, 4).shape == (20, 20)  # slice 4 is a key slice: readable without slice 3


def test_errors_are_ctlens_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.ctz"
    bad.write_bytes(b"\x89CTZ\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(CTLensError, match="x.ctz"):
        decode_volume(bad)
    with pytest.raises(CTLensError, match="no such"):
        decode_volume(tmp_path / "missing.ctz")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32, np.uint32])
@pytest.mark.parametrize("mode", ["lossless", "roi"])
def test_other_integer_dtypes_round_trip(dtype: type, mode: str, tmp_path: Path) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    lo = max(int(info.min), -40000) if info.bits > 16 else int(info.min)
    lo = 100000 if dtype == np.int32 else lo  # values beyond 16 bits, range within 16 bits
    hi = lo + min(60000, int(info.max) - lo)
    vol = rng.integers(lo, hi, (3, 20, 20), endpoint=True).astype(dtype)
    encode_volume(vol, tmp_path / "d.ctz", mode=mode, max_error=3)
    out = decode_volume(tmp_path / "d.ctz").array
    assert out.dtype == vol.dtype
    err = np.abs(out.astype(np.int64) - vol.astype(np.int64))
    assert err.max() <= (0 if mode == "lossless" else 3)
    np.testing.assert_array_equal(decode_slice(tmp_path / "d.ctz", 2), out[2])


def test_bad_parameters_rejected(tmp_path: Path) -> None:
    vol = np.zeros((1, 4, 4), np.int16)
    for kwargs, match in [
        ({"mode": "jpeg"}, "mode"),
        ({"profile": "tiny"}, "profile"),
        ({"mode": "roi", "max_error": 200}, "max_error"),
    ]:
        with pytest.raises(ValueError, match=match):
            encode_volume(vol, tmp_path / "p.ctz", **kwargs)
        assert not (tmp_path / "p.ctz").exists()
    with pytest.raises(UnsupportedFormatError, match="integer"):
        encode_volume(np.zeros((1, 4, 4), np.float32), tmp_path / "f.ctz")
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_stream_leaves_no_file(tmp_path: Path) -> None:
    from ctlens.codec import encode_slices

    def gen():  # noqa: ANN202
        yield np.zeros((8, 8), np.int16)
        yield np.zeros((8, 8), np.int16)
        yield np.zeros((9, 8), np.int16)

    with pytest.raises(ValueError, match="slice 2 has shape"):
        encode_slices(gen(), tmp_path / "m.ctz")
    assert list(tmp_path.iterdir()) == []
