"""2-D images (PNG, JPEG, BMP, TIFF) read as one-slice grey volumes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ctlens.core.errors import CorruptFileError, InputNotFoundError, UnsupportedFormatError
from ctlens.io.image2d_reader import LUMA_WEIGHTS, read_image2d, to_grayscale


def _gradient(h: int = 16, w: int = 20) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (x * 10 + y * 3).astype(np.uint8)


def test_png_8bit(tmp_path: Path) -> None:
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "g.png")
    vol = read_image2d(tmp_path / "g.png")
    assert vol.shape == (1, 16, 20) and vol.array.dtype == np.uint8
    np.testing.assert_array_equal(vol.array[0], arr)
    assert vol.spacing == (1.0, 1.0, 1.0) and vol.origin == (0.0, 0.0, 0.0)
    assert vol.modality == "OT"
    assert vol.meta == {"source_format": "png", "mode": "L"}


def test_png_16bit_stays_uint16(tmp_path: Path) -> None:
    arr = (np.arange(48, dtype=np.uint32).reshape(6, 8) * 1393 % 65536).astype(np.uint16)
    arr[0, 0], arr[0, 1] = 0, 65535
    Image.fromarray(arr).save(tmp_path / "g16.png")
    vol = read_image2d(tmp_path / "g16.png")
    assert vol.array.dtype == np.uint16 and vol.shape == (1, 6, 8)
    np.testing.assert_array_equal(vol.array[0], arr)


def test_png_rgb_uses_bt601_luma(tmp_path: Path) -> None:
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[0, 3] = (255, 255, 255)
    rgb[1] = np.random.default_rng(3).integers(0, 256, size=(4, 3))
    Image.fromarray(rgb).save(tmp_path / "c.png")
    vol = read_image2d(tmp_path / "c.png")
    assert vol.array.dtype == np.uint8 and vol.shape == (1, 2, 4)
    assert vol.array[0, 0].tolist() == [76, 150, 29, 255]  # 0.299, 0.587, 0.114 of 255, rounded
    expected = np.rint(rgb.astype(np.float64) @ np.asarray(LUMA_WEIGHTS))
    np.testing.assert_array_equal(vol.array[0], expected)
    pillow = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    assert np.abs(vol.array[0].astype(int) - pillow).max() <= 1
    assert vol.meta["grayscale_from"] == "RGB"


def test_rgba_alpha_is_dropped(tmp_path: Path) -> None:
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.arange(9, dtype=np.uint8).reshape(3, 3) * 30
    Image.fromarray(rgba).save(tmp_path / "a.png")
    vol = read_image2d(tmp_path / "a.png")
    np.testing.assert_array_equal(vol.array, np.full((1, 3, 3), round(200 * 0.299), np.uint8))
    assert vol.meta["grayscale_from"] == "RGBA"


def test_palette_and_bilevel_png(tmp_path: Path) -> None:
    Image.fromarray(_gradient()).convert("P").save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image2d(tmp_path / "p.png").array[0], _gradient())
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image2d(tmp_path / "b.png").array[0], [[0, 255], [255, 0]])


def test_jpeg_grey_and_colour(tmp_path: Path) -> None:
    arr = _gradient(32, 32)
    Image.fromarray(arr).save(tmp_path / "g.jpg", quality=100)
    vol = read_image2d(tmp_path / "g.jpg")
    assert vol.shape == (1, 32, 32) and vol.array.dtype == np.uint8
    assert np.abs(vol.array[0].astype(int) - arr).max() <= 3  # lossy
    assert vol.meta["source_format"] == "jpeg"

    Image.new("RGB", (8, 4), (10, 200, 60)).save(tmp_path / "c.jpeg", quality=100)
    vol = read_image2d(tmp_path / "c.jpeg")
    assert vol.shape == (1, 4, 8)
    assert abs(int(vol.array.mean()) - round(0.299 * 10 + 0.587 * 200 + 0.114 * 60)) <= 2


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_gradient(16, 24)).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    vol = read_image2d(tmp_path / "phone.jpg")
    assert vol.shape == (1, 24, 16) and vol.meta["exif_transposed"] is True


def test_bmp_and_tiff(tmp_path: Path) -> None:
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "g.bmp")
    np.testing.assert_array_equal(read_image2d(tmp_path / "g.bmp").array[0], arr)
    arr16 = arr.astype(np.uint16) * 250
    Image.fromarray(arr16).save(tmp_path / "g.tif")
    vol = read_image2d(tmp_path / "g.tif")
    assert vol.meta["source_format"] == "tiff" and vol.array.dtype == np.uint16
    np.testing.assert_array_equal(vol.array[0], arr16)
    flt = np.linspace(-1000, 1000, 20 * 16, dtype=np.float32).reshape(16, 20)
    Image.fromarray(flt).save(tmp_path / "f.tiff")
    np.testing.assert_array_equal(read_image2d(tmp_path / "f.tiff").array[0], flt)


def test_multipage_tiff_is_refused(tmp_path: Path) -> None:
    pages = [Image.fromarray(_gradient()) for _ in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(UnsupportedFormatError, match=r"stack\.tif.*3 pages"):
        read_image2d(tmp_path / "stack.tif")


def test_truncated_png(tmp_path: Path) -> None:
    noisy = np.random.default_rng(1).integers(0, 256, size=(64, 64), dtype=np.uint8)
    path = tmp_path / "cut.png"
    Image.fromarray(noisy).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.png.*truncated"):
        read_image2d(path)


def test_text_file_named_png(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("not a picture")
    with pytest.raises(CorruptFileError, match=r"fake\.png"):
        read_image2d(tmp_path / "fake.png")


def test_zero_byte_and_missing_and_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(CorruptFileError, match=r"empty\.png"):
        read_image2d(tmp_path / "empty.png")
    with pytest.raises(InputNotFoundError, match=r"nope\.png"):
        read_image2d(tmp_path / "nope.png")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(UnsupportedFormatError, match=r"x\.gif"):
        read_image2d(tmp_path / "x.gif")


@pytest.mark.parametrize("limit_factor", [0.9, 0.4])  # over the warning limit, and over twice the limit
def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit_factor: float) -> None:
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(100 * 100 * limit_factor))
    with pytest.raises(CorruptFileError, match=r"big\.png.*decompression bomb"):
        read_image2d(tmp_path / "big.png")


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint32", "float32", "uint16"])
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("compression", [None, "packbits", "zlib", "lzw"])
def test_tiff_sample_formats_keep_their_values(
    dtype: str, byteorder: str, compression: str | None, tmp_path: Path
) -> None:
    """TIFFs written by tifffile: Pillow read int8 as uint8, uint32 as int32 and byte-swapped signed / float samples
    of compressed big-endian files twice (-5000 -> 30956); every value now comes back (Pillow refuses big-endian
    uint32: a clear error)."""
    import tifffile

    arr = ((np.arange(30).reshape(5, 6) - 13) * (9 if dtype == "int8" else 2000)).astype(dtype)
    if dtype.startswith("uint"):
        arr = arr.astype(np.int64).astype(dtype)  # wrapped: the high half of the range too
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, arr, byteorder=byteorder, compression=compression)
    if dtype == "uint32" and byteorder == ">":
        with pytest.raises(CorruptFileError, match=r"s\.tif"):
            read_image2d(path)
        return
    got = read_image2d(path).array[0]
    np.testing.assert_array_equal(got, arr)
    assert got.dtype == {"int16": np.int32}.get(dtype, np.dtype(dtype))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("dtype", ["int16", "uint16", "uint8"])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiff_orientation(orientation: int, dtype: str, compression: str | None, tmp_path: Path) -> None:
    """Every TIFF orientation gives what EXIF says it means, read by Pillow (which applies it itself: right for
    compressed files, scrambled for uncompressed ones turned by 90 degrees) or by tifffile (signed samples)."""
    import tifffile

    arr = (np.arange(4 * 7).reshape(4, 7) * 3).astype(dtype)
    tifffile.imwrite(tmp_path / "o.tif", arr, extratags=[(274, "H", 1, orientation, True)], compression=compression)
    shown = {2: arr[:, ::-1], 3: arr[::-1, ::-1], 4: arr[::-1], 5: arr.T, 6: np.rot90(arr, -1)}
    shown |= {7: arr[::-1, ::-1].T, 8: np.rot90(arr, 1)}
    np.testing.assert_array_equal(read_image2d(tmp_path / "o.tif").array[0], shown.get(orientation, arr))


def _rle_bmp(width: int, height: int, stream: bytes, *, four: bool = False, pad: int = 0) -> bytes:
    """An RLE8 / RLE4 BMP around ``stream`` (non-grey palette: mode P); ``pad`` bytes between palette and data."""
    colours = 16 if four else 256
    palette = b"".join(bytes([k % 256, 255 - k % 256, 7, 0]) for k in range(colours)) + bytes(pad)
    offset = 14 + 40 + len(palette)
    dib = struct.pack(
        "<IiiHHIIiiII", 40, width, height, 1, 4 if four else 8, 2 if four else 1, len(stream), 0, 0, colours, 0
    )
    return b"BM" + struct.pack("<IHHI", offset + len(stream), 0, 0, offset) + dib + palette + stream


RLE_STREAMS = {
    "runs_and_rows": (5, 3, bytes([2, 1, 3, 2, 0, 0, 5, 3, 0, 0, 1, 4, 4, 5, 0, 1])),
    "run_past_row_end": (4, 2, bytes([9, 1, 0, 0, 200, 2, 0, 1])),
    "absolute_into_next_row": (3, 3, bytes([0, 5, 1, 2, 3, 4, 5, 0, 1, 6, 0, 0, 3, 7, 0, 1])),
    "absolute_odd_pad": (4, 2, bytes([0, 3, 9, 8, 7, 0, 1, 5, 0, 0, 4, 1, 0, 1])),
    "delta": (6, 3, bytes([1, 4, 0, 2, 2, 1, 2, 6, 0, 0, 6, 1, 0, 1])),
    "delta_past_end": (4, 2, bytes([1, 4, 0, 2, 255, 255, 0, 1])),
    "ends_early": (4, 3, bytes([4, 1, 0, 0, 0, 1])),
    "data_ends": (4, 2, bytes([4, 1, 0, 0, 4])),
    "absolute_cut": (8, 1, bytes([0, 8, 1, 2])),
    "eol_only": (3, 2, bytes([0, 0, 0, 0, 0, 0, 3, 1, 0, 0, 3, 2])),
}


@pytest.mark.parametrize("four", [False, True], ids=["rle8", "rle4"])
@pytest.mark.parametrize("name", sorted(RLE_STREAMS))
@pytest.mark.parametrize("pad", [0, 1])
def test_rle_bmp_is_decoded_as_pillow_does(name: str, four: bool, pad: int, tmp_path: Path) -> None:
    """:mod:`ctlens.io.bmp_rle` against Pillow's own BMP RLE decoder, edge cases of the format: the same pixels,
    or an error from both (``pad`` shifts the data to an odd file position: absolute runs pad to even ones)."""
    width, height, stream = RLE_STREAMS[name]
    path = tmp_path / "rle.bmp"
    path.write_bytes(_rle_bmp(width, height, stream, four=four, pad=pad))
    try:
        with Image.open(path) as image:
            image.load()
            expected = to_grayscale(image)[0]
    except (OSError, ValueError):
        expected = None
    if expected is None:
        with pytest.raises(CorruptFileError, match=r"rle\.bmp"):
            read_image2d(path)
    else:
        np.testing.assert_array_equal(read_image2d(path).array[0], expected)


def test_png_16bit_grey_alpha_keeps_16_bits(tmp_path: Path) -> None:
    """Pillow opens 16-bit grey + alpha PNGs as 8-bit RGBA (5001 became 19); the grey channel now stays uint16."""
    import imagecodecs

    grey = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3001 + 7).astype(np.uint16)
    data = bytes(imagecodecs.png_encode(np.dstack([grey, np.full_like(grey, 40000)])))
    (tmp_path / "la.png").write_bytes(data)
    volume = read_image2d(tmp_path / "la.png")
    assert volume.array.dtype == np.uint16
    np.testing.assert_array_equal(volume.array[0], grey)
    (tmp_path / "cut.png").write_bytes(data[: len(data) - 30])
    with pytest.raises(CorruptFileError, match=r"cut\.png"):
        read_image2d(tmp_path / "cut.png")
