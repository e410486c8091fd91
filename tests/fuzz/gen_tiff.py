"""Structure-aware TIFF inputs: valid small TIFFs from two encoders, then one IFD field pushed to extremes.

Seeds come from Pillow (modes 1 / L / LA / P / RGB / RGBA / CMYK / I;16 / I / F, compressions raw, LZW, deflate,
packbits, JPEG-in-TIFF, CCITT group 4) and from tifffile (tiles, planar configuration 2, horizontal and float
predictors, big-endian, BigTIFF, several pages, SubIFDs, int8 / int16 / uint32 / float16 / float64 samples).
The mutations rewrite the first IFD: a tag's value set to an extreme (width, height, bits per sample, samples
per pixel, strip / tile offsets and byte counts, rows per strip, tile sizes, compression, photometric, planar
configuration, predictor, sample format, colour map, extra samples, orientation), a tag's type or count changed,
entries dropped, duplicated or added (an EXIF or SubIFD pointer anywhere), the next-IFD pointer made a loop or a
long chain of pages, a strip replaced by a deflate bomb; then maybe truncation or raw byte damage.

Example:
    >>> data = tiff_seed("L", "raw", 3, 2)
    >>> [tag for tag, *_ in ifd_entries(data)[1]][:3]
    [256, 257, 258]
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import Any

import numpy as np
from gen_ctz import mutate_bytes
from hypothesis import strategies as st
from PIL import Image

__all__ = ["PILLOW_SEEDS", "TIFFFILE_SEEDS", "append_ifd", "ifd_entries", "tiff_bytes", "tiff_seed", "tifffile_seed"]

PILLOW_SEEDS = [
    ("L", "raw"),
    ("RGB", "tiff_lzw"),
    ("I;16", "tiff_adobe_deflate"),
    ("RGBA", "packbits"),
    ("RGB", "jpeg"),
    ("L", "jpeg"),
    ("1", "group4"),
    ("P", "tiff_lzw"),
    ("CMYK", "raw"),
    ("I", "tiff_deflate"),
    ("F", "raw"),
    ("LA", "packbits"),
    ("1", "raw"),
]
TIFFFILE_SEEDS = ["tiled", "planar", "predictor", "bigendian", "int8", "float16", "float64", "uint32", "jpeg12"]
TIFFFILE_SEEDS += ["pages", "subifd", "bigtiff", "ycbcr", "minisblack16", "tiled_jpeg", "palette"]
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_TAGS = [256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339, 530, 532]
_EXTREMES = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1]


def _pattern(mode: str, width: int, height: int, value: int) -> Image.Image:
    rng = np.random.default_rng(value)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (height, width)).astype(np.uint16))
    rgb = Image.fromarray(rng.integers(0, 255, (height, width, 3)).astype(np.uint8), "RGB")
    return rgb.convert("L").convert("F") if mode == "F" else rgb.convert(mode)


@functools.cache
def tiff_seed(mode: str, compression: str, width: int, height: int, value: int = 7) -> bytes:
    """A valid TIFF written by Pillow (``compression`` ``"raw"`` or one of Pillow's TIFF compression names)."""
    buf = io.BytesIO()
    options: dict[str, Any] = {} if compression == "raw" else {"compression": compression}
    _pattern(mode, width, height, value).save(buf, format="TIFF", **options)
    return buf.getvalue()


@functools.cache
def tifffile_seed(kind: str, width: int = 20, height: int = 18, value: int = 3) -> bytes:
    """A valid TIFF written by tifffile, of one of the layouts in :data:`TIFFFILE_SEEDS`."""
    import tifffile

    rng = np.random.default_rng(value)
    grey, rgb = rng.integers(0, 255, (height, width)), rng.integers(0, 255, (height, width, 3))
    array, options = grey.astype(np.uint8), {}
    if kind == "tiled":
        options = {"tile": (16, 16), "compression": "zlib"}
    elif kind == "planar":
        array, options = rgb.astype(np.uint8), {"photometric": "rgb", "planarconfig": "separate"}
    elif kind == "predictor":
        array, options = grey.astype(np.uint16) * 200, {"compression": "lzw", "predictor": True}
    elif kind == "bigendian":
        array, options = grey.astype(np.int16) - 100, {"byteorder": ">", "compression": "packbits"}
    elif kind in ("int8", "float16", "float64", "uint32"):
        array = (grey - 128).astype(kind)
        options = {"compression": "zlib", "predictor": kind.startswith("float")} if kind != "int8" else {}
    elif kind == "jpeg12":
        array, options = grey.astype(np.uint16) * 16, {"compression": "jpeg", "bitspersample": 12}
    elif kind == "pages":
        array, options = np.stack([grey.astype(np.uint8)] * 3), {"photometric": "minisblack"}
    elif kind == "subifd":
        buf = io.BytesIO()
        with tifffile.TiffWriter(buf) as writer:
            writer.write(array, subifds=1)
            writer.write(array[::2, ::2], subfiletype=1)
        return buf.getvalue()
    elif kind == "bigtiff":
        options = {"bigtiff": True}
    elif kind == "ycbcr":
        array, options = rgb.astype(np.uint8), {"photometric": "rgb", "compression": "jpeg"}
    elif kind == "minisblack16":
        array, options = grey.astype(np.uint16), {"photometric": "minisblack", "rowsperstrip": 5}
    elif kind == "tiled_jpeg":
        array, options = rgb.astype(np.uint8), {"photometric": "rgb", "compression": "jpeg", "tile": (16, 16)}
    elif kind == "palette":
        colormap = rng.integers(0, 65535, (3, 256)).astype(np.uint16)
        options = {"photometric": "palette", "colormap": colormap}
    buf = io.BytesIO()
    try:
        tifffile.imwrite(buf, array, **options)
    except Exception:  # noqa: BLE001 - a codec missing from this imagecodecs build: the plain layout instead
        buf = io.BytesIO()
        tifffile.imwrite(buf, array)
    return buf.getvalue()


def ifd_entries(data: bytes) -> tuple[str, list[tuple[int, int, int, int]], int]:
    """Byte order, ``(tag, type, count, entry position)`` of the first IFD's entries, next-IFD pointer position.

    Only classic TIFF (magic 42); an unreadable header gives no entries.
    """
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8 or struct.unpack(order + "H", data[2:4])[0] != 42:
        return "<", [], -1
    (first,) = struct.unpack(order + "I", data[4:8])
    if first + 2 > len(data):
        return order, [], -1
    (count,) = struct.unpack(order + "H", data[first : first + 2])
    entries = []
    for k in range(count):
        pos = first + 2 + 12 * k
        if pos + 12 > len(data):
            break
        tag, kind, n = struct.unpack(order + "HHI", data[pos : pos + 8])
        entries.append((tag, kind, n, pos))
    return order, entries, first + 2 + 12 * count


def _set_value(buf: bytearray, order: str, entry: tuple[int, int, int, int], value: int, every: bool) -> None:
    """Set one (or every) value of an entry; a value in the entry itself becomes LONG if it does not fit."""
    _, kind, count, pos = entry
    size = _TYPE_SIZES.get(kind, 1) * count
    fmt = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q"}.get(kind)
    if size <= 4 or fmt is None:
        buf[pos + 2 : pos + 12] = struct.pack(order + "HII", 4, 1, value & 0xFFFFFFFF)
        return
    (offset,) = struct.unpack(order + "I", buf[pos + 8 : pos + 12])
    width = struct.calcsize(fmt)
    value &= (1 << (8 * width)) - 1
    if fmt.islower():
        value -= (1 << (8 * width)) if value >= 1 << (8 * width - 1) else 0
    for k in range(min(count, max(0, (len(buf) - offset) // width)) if every else 1):  # count may be 2**32 - 1
        at = offset + width * k
        if at + width <= len(buf):
            buf[at : at + width] = struct.pack(order + fmt, value)


def append_ifd(buf: bytearray, order: str, entries: list[bytes], next_ifd: int) -> bytearray:
    """Write a new IFD of raw 12-byte ``entries`` at the end of ``buf`` (in place) and point the header at it."""
    buf += b"\0" * (len(buf) & 1)
    at = len(buf)
    buf += struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", next_ifd)
    buf[4:8] = struct.pack(order + "I", at)
    return buf


@functools.cache
def _bomb(size: int) -> bytes:
    return zlib.compress(bytes(size), 9)


def _mutate_ifd(draw: Any, data: bytes) -> bytes:
    order, entries, next_at = ifd_entries(data)
    buf = bytearray(data)
    if not entries:
        return data
    kind = draw(st.sampled_from(["value", "value", "value", "type", "count", "entries", "next", "bomb"]))
    wanted = [e for e in entries if e[0] in _TAGS] or entries
    entry = draw(st.sampled_from(wanted))
    if kind == "value":
        value = draw(st.sampled_from(_EXTREMES) | st.integers(0, 2**32 - 1) | st.integers(0, len(data) + 16))
        _set_value(buf, order, entry, value, draw(st.booleans()))
    elif kind == "type":
        buf[entry[3] + 2 : entry[3] + 4] = struct.pack(order + "H", draw(st.integers(0, 20)))
    elif kind == "count":
        count = draw(st.sampled_from([0, 1, 2, 3, 255, 65536, 2**28, 2**31, 2**32 - 1]))
        buf[entry[3] + 4 : entry[3] + 8] = struct.pack(order + "I", count)
    elif kind == "entries":
        raw = [bytes(buf[pos : pos + 12]) for *_, pos in entries]
        action = draw(st.sampled_from(["drop", "duplicate", "exif", "subifd", "orientation", "unsorted"]))
        k = draw(st.integers(0, len(raw) - 1))
        if action == "drop":
            del raw[k]
        elif action == "duplicate":
            raw.insert(k, raw[k])
        elif action == "unsorted":
            raw.reverse()
        else:
            tag = {"exif": 34665, "subifd": 330, "orientation": 274}[action]
            value = draw(st.sampled_from([0, 8, 9, len(buf) - 2, len(buf) + 100, 2**32 - 1]) | st.integers(0, 70000))
            extra = struct.pack(order + "HHII", tag, 4 if tag != 274 else 3, 1, value if tag != 274 else 0)
            if tag == 274:
                extra = extra[:8] + struct.pack(order + "HH", value & 0xFFFF, 0)
            raw = [r for r in raw if struct.unpack(order + "H", r[:2])[0] != tag] + [extra]
            raw.sort(key=lambda r: struct.unpack(order + "H", r[:2])[0])
        buf = append_ifd(buf, order, raw, 0)
    elif kind == "next" and next_at + 4 <= len(buf):
        (first,) = struct.unpack(order + "I", buf[4:8])
        target = draw(st.sampled_from(["loop", "chain", "past", "inside"]))
        if target == "chain":  # many copies of the IFD, each pointing at the next: a file of many pages
            pages = draw(st.sampled_from([2, 3, 100, 5000]))
            raw = [bytes(buf[pos : pos + 12]) for *_, pos in entries]
            for _ in range(pages - 1):
                buf = append_ifd(buf, order, raw, struct.unpack(order + "I", buf[4:8])[0])
        else:
            value = {"loop": first, "past": len(buf) + 1000, "inside": draw(st.integers(0, len(buf)))}[target]
            buf[next_at : next_at + 4] = struct.pack(order + "I", value)
    elif kind == "bomb":  # the first strip replaced by deflate of zeros, the image made large to match
        side = draw(st.sampled_from([3000, 9000, 20000, 46341]))
        payload = _bomb(min(side * side, 60_000_000))
        at = len(buf)
        buf += payload
        for tag, _, _, pos in entries:
            values = {256: side, 257: side, 278: side, 259: 8, 273: at, 279: len(payload), 277: 1, 258: 8}
            if tag in values:
                buf[pos : pos + 12] = struct.pack(order + "HHII", tag, 4, 1, values[tag])
    return bytes(buf)


@st.composite
def tiff_bytes(draw: Any) -> bytes:
    """A crafted TIFF (module doc)."""
    if draw(st.booleans()):
        mode, compression = draw(st.sampled_from(PILLOW_SEEDS))
        data = tiff_seed(mode, compression, draw(st.integers(1, 20)), draw(st.integers(1, 20)), draw(st.integers(0, 3)))
    else:
        data = tifffile_seed(draw(st.sampled_from(TIFFFILE_SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        data = _mutate_ifd(draw, data)
    if draw(st.integers(0, 2)) == 0:
        data = mutate_bytes(data, draw)
    return data
