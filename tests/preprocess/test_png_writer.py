"""The fast PNG writer (ctlens.preprocess.png_writer): every shape and channel count, every deflate it may use,
decodes to exactly the pixels given in two independent decoders (Pillow, libpng through imagecodecs), with valid
chunk CRCs and no text chunks; bad input is refused with a clear reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ctlens.preprocess import png_writer
from ctlens.preprocess.png_writer import deflate_backend, encode_png

SHAPES = [(1, 1), (1, 7), (9, 1), (3, 257), (64, 48), (5, 6, 1), (5, 6, 2), (7, 5, 3), (4, 9, 4), (1, 1, 3)]


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        out.append((kind, data))
        pos += 12 + length
    return out


def _pixels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random bytes with smooth stretches (what a windowed slice looks like) and the extremes 0 and 255."""
    a = rng.integers(0, 256, size=shape, dtype=np.uint8)
    a.reshape(-1)[: a.size // 3] = np.linspace(0, 255, a.size // 3).astype(np.uint8)
    a.reshape(-1)[:2] = (0, 255)[: min(2, a.size)]
    return a


@pytest.fixture(params=["isal", "libdeflate", "zlib"])
def backend(request, monkeypatch) -> str:
    """Each deflate the writer may use (the faster ones switched off in turn; isal only where installed)."""
    if request.param == "isal" and png_writer._isal is None:
        pytest.skip("the isal package is not installed")
    if request.param in ("libdeflate", "zlib"):
        monkeypatch.setattr(png_writer, "_isal", None)
    if request.param == "zlib":
        monkeypatch.setattr(png_writer, "_libdeflate", None)
    assert deflate_backend(1) == request.param
    return request.param


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("level", [1, 6])
def test_png_decodes_to_the_pixels_given(shape, level, backend) -> None:
    rng = np.random.default_rng(abs(hash((shape, level))) % 2**32)
    pixels = _pixels(rng, shape)
    png = encode_png(pixels, level)
    want = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    with Image.open(io.BytesIO(png)) as im:
        assert np.array_equal(np.asarray(im), want)
    imagecodecs = pytest.importorskip("imagecodecs")
    assert np.array_equal(imagecodecs.png_decode(png), want)
    kinds = [kind for kind, _ in _chunks(png)]
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]  # no tEXt / iTXt / zTXt: no metadata leaves with a slice


def test_big_slice_of_each_kind_round_trips_and_is_no_bigger_than_pillow_level_1() -> None:
    """A windowed 512 x 512 CT-like slice, grey and RGB: exact pixels, size within 10 % of Pillow's level 1."""
    y, x = np.mgrid[:512, :512]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 240.0) ** 2 < 1
    noise = np.random.default_rng(3).normal(0, 12, (512, 512))
    grey = np.clip(np.where(body, 120 + noise + 40 * np.sin(x / 17.0), 0), 0, 255).astype(np.uint8)
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    for pixels in (grey, rgb):
        png = encode_png(pixels)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels)
        pillow = io.BytesIO()
        Image.fromarray(pixels).save(pillow, format="PNG", compress_level=1)
        assert len(png) <= 1.1 * len(pillow.getvalue())


@pytest.mark.parametrize(
    ("pixels", "level", "reason"),
    [
        (np.zeros((4, 4), np.int16), 1, "uint8"),
        (np.zeros((4, 4), np.float32), 1, "uint8"),
        (np.zeros(16, np.uint8), 1, "shape"),
        (np.zeros((2, 2, 5), np.uint8), 1, "shape"),
        (np.zeros((0, 4), np.uint8), 1, "rows"),
        (np.zeros((4, 4), np.uint8), 0, "level"),
        (np.zeros((4, 4), np.uint8), 13, "level"),
    ],
)
def test_bad_input_is_refused_with_the_reason(pixels, level, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_png(pixels, level)


def test_non_contiguous_views_encode_like_their_copies() -> None:
    a = _pixels(np.random.default_rng(5), (40, 60, 3))
    for view in (a[::2], a[:, ::-1], a.transpose(1, 0, 2), a[..., ::-1]):
        assert encode_png(view) == encode_png(np.ascontiguousarray(view))
