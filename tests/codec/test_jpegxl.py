"""The JPEG XL entropy stage: bit-exact at every bit depth, through slices and files, old files still decode."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctlens.codec import backends, decode_slice, decode_volume, encode_volume, read_info
from ctlens.codec.container import CtzReader, CtzWriter, SliceRecordMeta
from ctlens.codec.slice_codec import INTER, decode_slice_bytes, encode_slice
from ctlens.core.errors import CorruptFileError, CTLensError
from ctlens.core.volume import Volume

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JXL = backends.BACKEND_IDS["jpegxl"]


@st.composite
def volumes(draw: st.DrawFn) -> np.ndarray:
    """int16 / uint16 / uint8 / int32 (16-bit range) volumes: noise of any width and offset, constant, CT-like."""
    dtype = draw(st.sampled_from([np.int16, np.uint16, np.uint8, np.int32]))
    z, y, x = draw(st.integers(1, 3)), draw(st.integers(1, 19)), draw(st.integers(1, 19))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    info = np.iinfo(dtype)
    lo_limit, hi_limit = (int(info.min), int(info.max)) if dtype != np.int32 else (-70000, 70000)
    width = draw(st.sampled_from([0, 1, 255, 256, 4095, 4096, 65535]))
    width = min(width, hi_limit - lo_limit)
    lo = draw(st.integers(lo_limit, hi_limit - width))
    kind = draw(st.sampled_from(["noise", "constant", "ct"]))
    if kind == "constant":
        return np.full((z, y, x), lo, dtype)
    if kind == "noise":
        return rng.integers(lo, lo + width, (z, y, x), endpoint=True).astype(dtype)
    ramp = np.linspace(0, width, y * x).reshape(y, x)
    vol = lo + ramp[None] + rng.normal(0, 3 + width / 50, (z, y, x)) + np.arange(z)[:, None, None]
    return np.clip(np.round(vol), lo, lo + width).astype(dtype)


@SETTINGS
@given(vol=volumes(), effort=st.integers(1, 7), predict=st.sampled_from(["estimate", "measure"]))
def test_jpegxl_slices_bit_exact(vol: np.ndarray, effort: int, predict: str) -> None:
    previous = None
    for k, image in enumerate(vol):
        enc = encode_slice(image, previous, candidates=("jpegxl",), predict=predict, effort=effort)
        assert enc.backend == JXL
        out = decode_slice_bytes(
            enc.meta(), enc.main, enc.correction, image.shape, vol.dtype, vol[k - 1] if k else None
        )
        assert out.dtype == vol.dtype
        np.testing.assert_array_equal(out, image)
        previous = image


@SETTINGS
@given(vol=volumes(), profile=st.sampled_from(["small", "smallest"]), key=st.integers(0, 2))
def test_jpegxl_profiles_round_trip_through_files(vol: np.ndarray, profile: str, key: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.ctz"
        stats = encode_volume(Volume(vol), path, profile=profile, keyframe_interval=key, effort=2)
        assert sum(stats.backends.values()) == vol.shape[0]
        assert read_info(path)["codec"]["jpegxl_effort"] == 2
        np.testing.assert_array_equal(decode_volume(path).array, vol)
        k = vol.shape[0] - 1
        np.testing.assert_array_equal(decode_slice(path, k), vol[k])


@pytest.mark.parametrize("bits", range(17))
def test_every_bit_depth_is_declared_wide_enough(bits: int) -> None:
    """Values up to 2**bits - 1 (the edge where a too-small declared depth would silently drop the top bit)."""
    top = (1 << bits) - 1
    img = np.array([[0, top, top // 2], [top, 0, 1 if top else 0]], np.uint16)
    assert backends.jpegxl_bits(img) == max(9, bits)
    np.testing.assert_array_equal(backends.decode("jpegxl", backends.encode("jpegxl", img, effort=1), img.shape), img)


def test_previous_slice_prediction_is_used_and_exact() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(-1000, 1500, (40, 40)).astype(np.int16)
    nxt = (base + rng.integers(-2, 3, base.shape)).astype(np.int16)
    enc = encode_slice(nxt, base, candidates=("jpegxl",), effort=3)
    assert enc.predictor == INTER  # noise-free difference: inter is far cheaper, the estimate must see it
    np.testing.assert_array_equal(decode_slice_bytes(enc.meta(), enc.main, b"", nxt.shape, np.int16, base), nxt)


def test_cheapest_backend_per_slice_wins() -> None:
    img = np.random.default_rng(4).integers(0, 3000, (32, 32)).astype(np.int16)
    both = encode_slice(img, candidates=("jpegls", "jpegxl"), effort=3)
    sizes = [len(encode_slice(img, candidates=(name,), effort=3).main) for name in ("jpegls", "jpegxl")]
    assert len(both.main) == min(sizes)


def test_compact_files_and_jpegxl_files_coexist(tmp_path: Path) -> None:
    """A JPEG-LS file (as every older ctlens wrote) and a JPEG XL file decode alike; the record tells them apart."""
    vol = np.random.default_rng(5).integers(-1024, 2000, (3, 20, 20)).astype(np.int16)
    for profile, backend in (("compact", backends.BACKEND_IDS["jpegls"]), ("smallest", None)):
        path = tmp_path / f"{profile}.ctz"
        encode_volume(vol, path, profile=profile)
        ids = {r.meta.backend for r in CtzReader(path).records}
        assert ids == {backend} if backend is not None else ids <= {JXL, backends.BACKEND_IDS["jpegls"]}
        np.testing.assert_array_equal(decode_volume(path).array, vol)


def _rewrite_with_stream(src: Path, dst: Path, stream: bytes) -> None:
    """Copy ``src`` with slice 0 replaced by ``stream`` marked JPEG XL (checksums valid: only decoding can fail)."""
    reader = CtzReader(src)
    with CtzWriter(dst, reader.header) as writer:
        writer.add_slice(stream, b"", SliceRecordMeta(backend=JXL, predictor=0, bias=0, near=0))


@pytest.mark.parametrize("damage", ["truncated", "other size", "garbage"])
def test_bad_jpegxl_stream_is_a_clear_error(damage: str, tmp_path: Path) -> None:
    img = np.random.default_rng(6).integers(0, 4000, (16, 16)).astype(np.uint16)
    src = tmp_path / "ok.ctz"
    encode_volume(img[None].astype(np.int16), src)
    good = backends.encode("jpegxl", img, effort=1)
    stream = {
        "truncated": good[: len(good) // 2],
        "other size": backends.encode("jpegxl", np.zeros((64, 64), np.uint16), effort=1),
        "garbage": b"\xff\x0a" + bytes(range(40)),
    }[damage]
    bad = tmp_path / "bad.ctz"
    _rewrite_with_stream(src, bad, stream)
    for call in (lambda: decode_volume(bad), lambda: decode_slice(bad, 0)):
        with pytest.raises(CorruptFileError, match="bad.ctz.*slice 0: cannot decode"):
            call()
    with pytest.raises((CTLensError, ValueError, RuntimeError)):
        backends.decode("jpegxl", stream, (16, 16))


def test_effort_out_of_range_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="effort"):
        encode_volume(np.zeros((1, 4, 4), np.int16), tmp_path / "e.ctz", profile="small", effort=12)
    assert list(tmp_path.iterdir()) == []


def test_shared_series_first_slices_bit_exact(shared_series: dict, tmp_path: Path) -> None:
    """Real CT (every shared series, its first 4 slices) through the JPEG XL profile, exact and JPEG XL chosen."""
    for name, vol in shared_series.items():
        part = Volume(vol.array[:4], spacing=vol.spacing)
        path = tmp_path / "s.ctz"
        stats = encode_volume(part, path, profile="small")
        assert set(stats.backends) <= {"jpegls", "jpegxl"}, name
        np.testing.assert_array_equal(decode_volume(path).array, part.array, err_msg=name)
        np.testing.assert_array_equal(decode_slice(path, 3), part.array[3], err_msg=name)
