"""Crafted JSON exports, PNG / JPEG / TIFF / BMP images and labels files: one ``ctlens: error:`` line (or one
CTLensError), in bounded time and memory.

JSON exports and images are run through the real command line (``ctlens decompress x.json``, ``ctlens compress
x.png``), except where a test measures time or checks pixels (:func:`ctlens.io.image2d_reader.read_image2d`);
labels files have no command of their own (``ctlens.data.labels`` serves the training API), so their errors are
checked on :func:`ctlens.data.labels.load_study_labels`.

The few time bounds are CPU seconds of this process (``time.process_time``): other work on a loaded machine does not
count against them, a decoder doing 10x the work does.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_run import assert_one_line_error, run_cli
from ctz_craft import pack_ctz, unpack_ctz
from gen_image import _pack_png, jpeg_seed, png_chunks, png_seed
from gen_tiff import append_ifd, ifd_entries, tiff_seed, tifffile_seed

from ctlens.codec import encode_volume
from ctlens.core.errors import CorruptFileError
from ctlens.data.labels import load_study_labels
from ctlens.io.image2d_reader import read_image2d


@pytest.fixture(scope="module")
def ctz(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("json") / "a.ctz"
    encode_volume(np.arange(2 * 6 * 5, dtype=np.int16).reshape(2, 6, 5), path)
    return path.read_bytes()


def _export(path: Path, inner: bytes, **fields: Any) -> Path:
    doc = {"format": "ctlens-ctz-json", "version": 1, "ctz_base64": base64.b64encode(inner).decode(), **fields}
    path.write_text(json.dumps(doc))
    return path


def test_json_export_decompresses(ctz: bytes, tmp_path: Path) -> None:
    res = run_cli("decompress", str(_export(tmp_path / "ok.json", ctz)), str(tmp_path / "ok.nii.gz"))
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "ok.nii.gz").exists()


@pytest.mark.parametrize(
    "change", [{"shape_yx": [200000, 200000]}, {"dtype": "O"}, {"direction": [[0, 0, 0]] * 3}, {"spacing": [0, 1, 1]}]
)
def test_json_export_with_a_crafted_ctz_names_the_json_file(ctz: bytes, change: dict, tmp_path: Path) -> None:
    parts = unpack_ctz(ctz)
    inner = pack_ctz({**parts["header"], **change}, parts["streams"], parts["trailer"])
    path = _export(tmp_path / "crafted.json", inner)
    line = assert_one_line_error(run_cli("decompress", str(path), str(tmp_path / "o.nii.gz")), "crafted.json")
    assert "ctlens-ctz-" not in line and "export.ctz" not in line  # never the temporary file
    assert not (tmp_path / "o.nii.gz").exists()


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2, 3]",
        '{"format": "ctlens-ctz-json", "ctz_base64": 5}',
        '{"format": "ctlens-ctz-json", "ctz_base64": "not base64!"}',
        '{"format": "other", "ctz_base64": ""}',
        '{"format": "ctlens-ctz-json", "ctz_base64": ""}',
        "{" + '"a":' * 1 + "[" * 100000 + "]" * 100000 + "}",
        '{"format": "ctlens-ctz-json", "ctz_base64": "' + "9" * 5000,
    ],
)
def test_malformed_json_exports(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert_one_line_error(run_cli("decompress", str(path), str(tmp_path / "o.nii.gz")), "bad.json")


def _png(tmp_path: Path, chunks: list[tuple[bytes, bytes]], name: str = "crafted.png") -> Path:
    path = tmp_path / name
    path.write_bytes(_pack_png(chunks))
    return path


def _compress_fails(path: Path, *words: str) -> None:
    out = path.parent / "o.ctz"
    assert_one_line_error(run_cli("compress", str(path), str(out)), path.name, *words)
    assert not out.exists()


def test_png_control_compresses(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    path.write_bytes(png_seed("RGB", 6, 5))
    assert run_cli("compress", str(path), str(tmp_path / "ok.ctz")).exit_code == 0


def test_png_decompression_bomb(tmp_path: Path) -> None:
    """9000 x 9000 RGB (243 MB decoded) from a 236 kB file: refused from the header, before decoding."""
    chunks = png_chunks(png_seed("RGB", 5, 4))
    _, _, *rest = struct.unpack(">IIBBBBB", chunks[0][1])
    chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", 9000, 9000, *rest))
    chunks = [c for c in chunks if c[0] != b"IDAT"]
    chunks.insert(-1, (b"IDAT", zlib.compress(bytes(9000 * 27001), 9)))
    _compress_fails(_png(tmp_path, chunks), "decompression bomb")


@pytest.mark.parametrize("width,height", [(0, 4), (2**31, 1), (65535, 65535), (6, 5000)])
def test_png_header_sizes(width: int, height: int, tmp_path: Path) -> None:
    chunks = png_chunks(png_seed("L", 6, 5))
    _, _, *rest = struct.unpack(">IIBBBBB", chunks[0][1])
    chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", width, height, *rest))
    _compress_fails(_png(tmp_path, chunks))


def test_png_truncated_and_bad_depth(tmp_path: Path) -> None:
    data = png_seed("RGBA", 8, 8)
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _compress_fails(tmp_path / "cut.png")
    chunks = png_chunks(data)
    width, height, _, *rest = struct.unpack(">IIBBBBB", chunks[0][1])
    chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", width, height, 7, *rest))
    _compress_fails(_png(tmp_path, chunks, "depth.png"))


def _sof(data: bytes, width: int, height: int) -> bytes:
    buf = bytearray(data)
    pos = buf.index(b"\xff\xc0")
    buf[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
    return bytes(buf)


def test_jpeg_crafted_frame_sizes(tmp_path: Path) -> None:
    seed = jpeg_seed("RGB", 16, 16)
    for k, (width, height) in enumerate([(65535, 65535), (9000, 9000), (0, 16)]):
        path = tmp_path / f"frame{k}.jpg"
        path.write_bytes(_sof(seed, width, height))
        _compress_fails(path)
    (tmp_path / "cut.jpg").write_bytes(seed[:200])
    _compress_fails(tmp_path / "cut.jpg")


def test_wide_colour_jpeg_is_made_grey_in_small_blocks(tmp_path: Path) -> None:
    """A 960-byte CMYK JPEG of 52264 x 255 (found by ``make test``'s fuzz run): 13 MB of grey pixels.

    Its rows were converted 256 at a time, so the whole image was one block: an RGB copy and a float32 copy of it
    (350 MB of peak memory, over the harness's 282 MB). Now the grey image is made in bands of about a million
    pixels; the Python-side peak (numpy arrays, bytes: what tracemalloc sees) stays near the result's size.
    """
    path = tmp_path / "wide.jpg"
    path.write_bytes(_sof(jpeg_seed("CMYK", 16, 16), 52264, 255))
    tracemalloc.start()
    try:
        volume = read_image2d(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert volume.shape == (1, 255, 52264) and volume.meta["grayscale_from"] == "CMYK"
    assert peak < 2 * volume.array.nbytes + 32 * 1024**2, peak


@pytest.mark.parametrize("kind", ["tiled", "predictor", "tiled_jpeg", "bigendian", "palette", "ycbcr"])
def test_tiff_control_compresses(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "ok.tif"
    path.write_bytes(tifffile_seed(kind))
    res = run_cli("compress", str(path), str(tmp_path / "ok.ctz"))
    assert res.exit_code == 0, res.stderr


def _second_page(seed: bytes, change: Any) -> bytes:
    """``seed`` with a second page: a copy of its IFD, ``change``d (``{tag: raw 12-byte entry}``, byte order)."""
    order, entries, next_at = ifd_entries(seed)
    raw = {tag: bytearray(seed[pos : pos + 12]) for tag, _, _, pos in entries}
    change(raw, order)
    buf = append_ifd(bytearray(seed), order, [bytes(entry) for _, entry in sorted(raw.items())], 0)
    buf[next_at : next_at + 4], buf[4:8] = buf[4:8], seed[4:8]  # page 1 -> the new IFD; page 1 first again
    return bytes(buf)


@pytest.mark.parametrize(
    "mode,damage",
    [
        ("L", lambda raw, order: raw.pop(256)),  # no ImageWidth: Pillow's TypeError "Missing dimensions"
        ("L", lambda raw, order: raw[259].__setitem__(slice(8, 10), struct.pack(order + "H", 0))),  # KeyError: 0
        ("P", lambda raw, order: raw[320].__setitem__(slice(2, 4), struct.pack(order + "H", 13))),  # KeyError: 320
        ("P", lambda raw, order: raw[320].__setitem__(slice(8, 12), struct.pack(order + "I", 10**6))),
    ],
    ids=["no_width", "compression_0", "colormap_type", "colormap_past_end"],
)
def test_tiff_damaged_second_page(mode: str, damage: Any, tmp_path: Path) -> None:
    """Found by ``scripts/fuzz.py --reader tiff``: counting pages made Pillow parse page 2, whose damage raised
    TypeError / KeyError out of ``TiffImagePlugin._setup`` (a traceback). Any Pillow exception is now the file's
    CorruptFileError."""
    path = tmp_path / "paged.tif"
    path.write_bytes(_second_page(tiff_seed(mode, "raw", 6, 5), damage))
    _compress_fails(path, "malformed TIFF")


def test_tiff_with_many_pages_is_refused_fast(tmp_path: Path) -> None:
    """30000 one-IFD pages (3.4 MB): Pillow's ``n_frames`` parsed every page's directory (0.9 ms each: 27 s, past
    the fuzz time limit; 100000 pages took 90 s). Pages are now counted up to 65."""
    seed = tiff_seed("L", "raw", 6, 5)
    order, entries, _ = ifd_entries(seed)
    raw = [seed[pos : pos + 12] for *_, pos in entries]
    buf = bytearray(seed)
    for _ in range(30000):
        buf = append_ifd(buf, order, raw, struct.unpack(order + "I", buf[4:8])[0])
    path = tmp_path / "pages.tif"
    path.write_bytes(bytes(buf))
    start = time.process_time()
    _compress_fails(path, "over 64 pages")
    assert time.process_time() - start < 5


def test_tall_narrow_tiff_counts_pillows_row_pointers(tmp_path: Path) -> None:
    """Found by ``scripts/fuzz.py --reader tiff``: a 118-byte 1-bit TIFF declaring 2 x 16777224 pixels (34 MB, under
    the 64 MiB any image may decode to) grew peak memory by 357 MB: Pillow keeps an 8-byte pointer per row (134 MB),
    twice (the image and its grey copy). The size check now counts the pointers: 168 MB, refused from the header."""
    seed = tiff_seed("1", "raw", 2, 8)
    order, entries, _ = ifd_entries(seed)
    buf = bytearray(seed)
    for tag, _, _, pos in entries:
        if tag == 257:
            buf[pos : pos + 12] = struct.pack(order + "HHII", 257, 4, 1, 16777224)
    path = _write(tmp_path / "tall.tif", bytes(buf))
    with pytest.raises(CorruptFileError, match=r"tall\.tif.*2x16777224.*decompression bomb"):
        read_image2d(path)


def _rle8_bmp(width: int, height: int, stream: bytes) -> bytes:
    """An RLE8 BMP (palette of 256 greys made non-grey so it stays mode P) around ``stream``."""
    palette = b"".join(struct.pack("<BBBB", k, 255 - k, k, 0) for k in range(256))
    offset = 14 + 40 + len(palette)
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(stream), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(stream), 0, 0, offset) + dib + palette + stream


def test_rle_bmp_row_padding_is_decoded_fast(tmp_path: Path) -> None:
    """A 5 kB RLE8 BMP of 60000 x 1000 whose rows are one pixel and an end-of-line: Pillow pads each row in a
    Python loop, one byte at a time (14 s for 66 M pixels; 60 M here: under the service's 64 M pixel limit, which
    ``create_app`` sets process-wide). :mod:`ctlens.io.bmp_rle` fills them with numpy (0.5 s)."""
    path = tmp_path / "rows.bmp"
    path.write_bytes(_rle8_bmp(60000, 1000, b"\x01\x05\x00\x00" * 1000 + b"\x00\x01"))
    start = time.process_time()
    volume = read_image2d(path)
    assert time.process_time() - start < 5
    assert volume.shape == (1, 1000, 60000)
    column = volume.array[0, :, 0]
    assert (column == column[0]).all() and (volume.array[0, :, 1:] == volume.array[0, 0, 1]).all()
    assert column[0] != volume.array[0, 0, 1]  # index 5 in column 0, index 0 after it: different greys
    _compress_fails(_write(tmp_path / "cut.bmp", _rle8_bmp(60000, 1000, b"\x01\x05\x00\x00" * 10)), "truncated")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_labels_class_explosion_is_refused_fast(tmp_path: Path) -> None:
    """One study naming 5000 classes and 5000 studies: 100 MB of label vectors from a 70 kB file."""
    lines = ["study,label", "s0," + ";".join(f"c{k}" for k in range(5000))] + [f"t{k},c1" for k in range(5000)]
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(lines))
    start = time.process_time()
    with pytest.raises(CorruptFileError, match="labels.csv.*classes"):
        load_study_labels(path)
    assert time.process_time() - start < 5


@pytest.mark.parametrize(
    "name,text",
    [
        ("big_field.csv", "study,label\ns1," + "x" * 200_000 + "\n"),
        ("extra_cells.csv", "study,label\ns1,1,1\n"),
        ("deep.json", "[" * 100_000 + "]" * 100_000),
        ("scalar.json", "5"),
        ("rows.json", '[{"study": "s1"}, 3]'),
        ("bytes.csv", None),
    ],
)
def test_labels_files_fail_with_one_line(name: str, text: str | None, tmp_path: Path) -> None:
    path = tmp_path / name
    if text is None:
        path.write_bytes(b"study,label\ns1,\xff\xfe\n")
    else:
        path.write_text(text)
    with pytest.raises(CorruptFileError) as info:
        load_study_labels(path)
    assert name in str(info.value) and "\n" not in str(info.value)
