"""Structure-aware PNG and JPEG inputs: valid small images, then header fields pushed to extremes, chunks redone.

PNG: a Pillow-written image of any mode Pillow writes (1, L, LA, P, RGB, RGBA, I;16, I), then chunk-level
mutations with every chunk CRC recomputed: IHDR width/height/bit depth/colour type/interlace set to extremes,
IDAT replaced by zlib data of another size (decompression bombs), chunks dropped, duplicated or reordered,
ancillary chunks added (eXIf with any orientation, tEXt, iCCP garbage, PLTE of any length).
JPEG: a Pillow-written L / RGB / CMYK image, then the SOF frame size set to extremes, an EXIF orientation
segment added, markers duplicated or cut.
BMP: a Pillow-written 1 / L / P / RGB / RGBA bitmap or a hand-made one (RLE8, RLE4, 16-bit and 32-bit BITFIELDS,
OS/2 12-byte header, top-down rows, V4 / V5 headers), then one header field set to an extreme (width, height
of either sign, planes, bits per pixel, compression, image size, colours used, data offset, header size, colour
masks) or the RLE stream given runs past the row end, deltas past the image, huge end-of-line padding.
Any of them may get raw byte damage on top.

Example:
    >>> png_chunks(png_seed("L", 3, 2))[0][0]
    b'IHDR'
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

__all__ = ["BMP_SEEDS", "bmp_bytes", "bmp_seed", "jpeg_bytes", "jpeg_seed", "png_bytes", "png_chunks", "png_seed"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]
SIDES = [0, 1, 2, 255, 8191, 8192, 9000, 20000, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1]


def png_seed(mode: str, width: int, height: int, value: int = 7) -> bytes:
    """A valid PNG of ``mode`` and size, pixel values from a small pattern."""
    rng = np.random.default_rng(value)
    if mode in ("I;16", "I"):
        image = Image.fromarray(rng.integers(0, 65535, (height, width)).astype(np.uint16))
        image = image if mode == "I;16" else image.convert("I")
    else:
        image = Image.fromarray(rng.integers(0, 255, (height, width, 3)).astype(np.uint8), "RGB").convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_seed(mode: str, width: int, height: int, quality: int = 90) -> bytes:
    """A valid JPEG of ``mode`` (L, RGB, CMYK) and size."""
    rng = np.random.default_rng(width * 31 + height)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3)).astype(np.uint8), "RGB").convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, payload)`` of every chunk of a valid PNG."""
    out, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _pack_png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        for kind, payload in chunks
    )
    return PNG_SIGNATURE + body


@functools.cache
def _deflated(value: int, size: int) -> bytes:
    return zlib.compress(bytes([value]) * size, 9)


def _exif(orientation: int) -> bytes:
    """A minimal little-endian TIFF/EXIF block holding one Orientation (0x0112) entry."""
    return b"II*\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHIHH", 0x0112, 3, 1, orientation & 0xFFFF, 0) + b"\0" * 4


@st.composite
def png_bytes(draw: Any) -> bytes:
    """A crafted PNG (module doc)."""
    mode = draw(st.sampled_from(PNG_MODES))
    seed = png_seed(mode, draw(st.integers(1, 24)), draw(st.integers(1, 24)), draw(st.integers(0, 9)))
    chunks = png_chunks(seed)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["ihdr", "ihdr", "idat", "drop", "duplicate", "ancillary", "order"]))
        at = next((k for k, c in enumerate(chunks) if c[0] == b"IHDR" and len(c[1]) == 13), None)
        if kind == "ihdr" and at is not None:
            width, height, depth, colour, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[at][1])
            field = draw(st.sampled_from(["width", "height", "both", "depth", "colour", "interlace", "other"]))
            side = st.sampled_from(SIDES) | st.integers(0, 2**32 - 1)
            if field in ("width", "both"):
                width = draw(side)
            if field in ("height", "both"):
                height = draw(side)
            if field == "depth":
                depth = draw(st.sampled_from([0, 1, 2, 4, 8, 16, 32, 255]))
            if field == "colour":
                colour = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 255]))
            if field == "interlace":
                inter = draw(st.integers(0, 255))
            if field == "other":
                comp, filt = draw(st.integers(0, 255)), draw(st.integers(0, 255))
            chunks[at] = (b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, comp, filt, inter))
        elif kind == "idat":
            size = draw(st.sampled_from([0, 1, 100, 10_000, 1_000_000, 30_000_000]))
            payload = _deflated(draw(st.integers(0, 4)), size)
            chunks = [c for c in chunks if c[0] != b"IDAT"]
            chunks.insert(len(chunks) - 1, (b"IDAT", payload))
        elif kind == "drop" and len(chunks) > 1:
            del chunks[draw(st.integers(0, len(chunks) - 1))]
        elif kind == "duplicate":
            k = draw(st.integers(0, len(chunks) - 1))
            chunks.insert(k, chunks[k])
        elif kind == "ancillary":
            extra = draw(
                st.sampled_from(
                    [
                        (b"eXIf", _exif(draw(st.integers(0, 70000)))),
                        (b"tEXt", b"Comment\x00" + draw(st.binary(max_size=40))),
                        (b"iCCP", b"icc\x00\x00" + draw(st.binary(max_size=40))),
                        (b"PLTE", draw(st.binary(max_size=800))),
                        (b"tRNS", draw(st.binary(max_size=300))),
                        (b"zTXt", b"k\x00\x00" + zlib.compress(b"x" * draw(st.integers(0, 10**6)))),
                        (draw(st.binary(min_size=4, max_size=4)), draw(st.binary(max_size=40))),
                    ]
                )
            )
            chunks.insert(draw(st.integers(1, len(chunks))), extra)
        elif kind == "order" and len(chunks) > 2:
            i, j = draw(st.integers(0, len(chunks) - 1)), draw(st.integers(0, len(chunks) - 1))
            chunks[i], chunks[j] = chunks[j], chunks[i]
    data = _pack_png(chunks)
    if draw(st.integers(0, 3)) == 0:
        data = mutate_bytes(data, draw)
    return data


def _segments(data: bytes) -> list[tuple[int, int]]:
    """``(position, marker)`` of each JPEG marker segment before the scan data."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        out.append((pos, marker))
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return out


def sometimes_damaged(data: bytes, draw: Any) -> bytes:
    """``data``, or one time in four with one raw byte mutation on top (what a byte-level fuzzer adds)."""
    return mutate_bytes(data, draw) if draw(st.integers(0, 3)) == 0 else data


@st.composite
def jpeg_bytes(draw: Any) -> bytes:
    """A crafted JPEG (module doc)."""
    mode = draw(st.sampled_from(["L", "RGB", "CMYK"]))
    data = bytearray(jpeg_seed(mode, draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(5, 100))))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["sof", "sof", "exif", "duplicate", "cut"]))
        segments = _segments(bytes(data))
        if kind == "sof":
            for pos, marker in segments:
                if marker in (0xC0, 0xC1, 0xC2):
                    side = st.sampled_from([0, 1, 255, 9000, 20000, 65535]) | st.integers(0, 65535)
                    data[pos + 5 : pos + 9] = struct.pack(">HH", draw(side), draw(side))
                    if draw(st.booleans()):
                        data[pos + 4] = draw(st.sampled_from([0, 1, 8, 12, 16, 255]))
        elif kind == "exif":
            payload = b"Exif\x00\x00" + _exif(draw(st.integers(0, 70000)))
            data[2:2] = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
        elif kind == "duplicate" and segments:
            pos, _ = segments[draw(st.integers(0, len(segments) - 1))]
            length = 2 + struct.unpack(">H", bytes(data[pos + 2 : pos + 4]))[0]
            data[pos:pos] = data[pos : pos + length]
        elif kind == "cut":
            del data[draw(st.integers(2, len(data))) :]
    return sometimes_damaged(bytes(data), draw)


BMP_SEEDS = ["1", "L", "P", "RGB", "RGBA", "rle8", "rle4", "bitfields16", "bitfields32", "core", "topdown", "v5"]
_BMP_FIELDS = {"width": (18, "i"), "height": (22, "i"), "planes": (26, "H"), "bpp": (28, "H"), "compression": (30, "I")}
_BMP_FIELDS |= {"image_size": (34, "I"), "colours": (46, "I"), "offset": (10, "I"), "header_size": (14, "I")}


def _rle(rows: np.ndarray, four: bool) -> bytes:
    """RLE8 / RLE4 (Microsoft's BMP run-length encoding) of palette indices, bottom row first: runs of equal
    pixels, an absolute run where they differ, end-of-line after each row and end-of-bitmap at the end."""
    out = bytearray()
    for row in rows[::-1]:
        x = 0
        while x < len(row):
            run = 1
            while x + run < len(row) and run < 255 and row[x + run] == row[x]:
                run += 1
            value = (int(row[x]) << 4 | int(row[x])) if four else int(row[x])
            out += bytes([run, value])
            x += run
        out += b"\x00\x00"
    return bytes(out + b"\x00\x01")


def bmp_seed(kind: str, width: int = 9, height: int = 7) -> bytes:
    """A valid BMP of one of :data:`BMP_SEEDS` (Pillow's modes, or a layout built here)."""
    rng = np.random.default_rng(width * 7 + height)
    rgb = Image.fromarray(rng.integers(0, 255, (height, width, 3)).astype(np.uint8), "RGB")
    if kind in ("1", "L", "P", "RGB", "RGBA"):
        buf = io.BytesIO()
        rgb.convert(kind).save(buf, format="BMP")
        return buf.getvalue()
    header, bpp, compression, palette, masks = 40, 24, 0, b"", b""
    indices = rng.integers(0, 16, (height, width)) // 3  # runs of equal values, for RLE
    if kind in ("rle8", "rle4"):
        bpp, compression = (8, 1) if kind == "rle8" else (4, 2)
        palette = b"".join(struct.pack("<BBBB", 16 * k, 16 * k, 16 * k, 0) for k in range(16))
        pixels = _rle(indices, kind == "rle4")
    elif kind.startswith("bitfields"):
        bpp, compression = int(kind[9:]), 3
        masks = (
            struct.pack("<III", 0xF800, 0x07E0, 0x001F) if bpp == 16 else struct.pack("<III", 255 << 16, 255 << 8, 255)
        )
        values = np.asarray(rgb).astype(np.uint32)
        packed = (
            (values[..., 0] >> 3) << 11 | (values[..., 1] >> 2) << 5 | values[..., 2] >> 3
            if bpp == 16
            else values[..., 0] << 16 | values[..., 1] << 8 | values[..., 2]
        )
        stride = -(-width * bpp // 32) * 4
        rows = packed[::-1].astype("<u2" if bpp == 16 else "<u4").reshape(height, -1).view(np.uint8)
        pixels = b"".join(bytes(r) + bytes(stride - len(r)) for r in rows)
    else:
        stride = -(-width * 3 // 4) * 4
        rows = np.asarray(rgb)[::-1, :, ::-1] if kind != "topdown" else np.asarray(rgb)[:, :, ::-1]
        pixels = b"".join(bytes(r.reshape(-1)) + bytes(stride - width * 3) for r in rows)
        header = {"core": 12, "v5": 124}.get(kind, 40)
    if header == 12:
        dib = struct.pack("<IHHHH", 12, width, height, 1, bpp)
    else:
        sign = -1 if kind == "topdown" else 1
        dib = struct.pack(
            "<IiiHHIIiiII",
            header,
            width,
            sign * height,
            1,
            bpp,
            compression,
            len(pixels),
            2835,
            2835,
            len(palette) // 4,
            0,
        )
        dib += masks + bytes(header - 40 - len(masks)) if header > 40 else b""
        palette = palette if header > 40 else masks + palette
    offset = 14 + len(dib) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + dib + palette + pixels


@st.composite
def bmp_bytes(draw: Any) -> bytes:
    """A crafted BMP (module doc)."""
    kind = draw(st.sampled_from(BMP_SEEDS))
    data = bytearray(bmp_seed(kind, draw(st.integers(1, 30)), draw(st.integers(1, 30))))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["field", "field", "field", "masks", "rle", "cut"]))
        if action == "field":
            name = draw(st.sampled_from(sorted(_BMP_FIELDS)))
            at, fmt = _BMP_FIELDS[name]
            if kind == "core" and name in ("width", "height", "planes", "bpp"):
                at, fmt = {"width": (18, "H"), "height": (20, "H"), "planes": (22, "H"), "bpp": (24, "H")}[name]
            bits = 8 * struct.calcsize(fmt)
            low = -(1 << (bits - 1)) if fmt == "i" else 0
            value = draw(
                st.sampled_from([0, 1, 2, 4, 8, 12, 16, 24, 32, 40, 64, 124, 255, 9000, 65535, 2**31 - 1])
                | st.integers(low, (1 << bits) - 1 + low)
            )
            value = max(low, min((1 << bits) - 1 + low, value))
            if at + struct.calcsize(fmt) <= len(data):
                data[at : at + struct.calcsize(fmt)] = struct.pack("<" + fmt, value)
        elif action == "masks" and len(data) >= 66:
            data[54:66] = struct.pack(
                "<III",
                *(draw(st.sampled_from([0, 1, 0xFF, 0xFF00, 2**32 - 1]) | st.integers(0, 2**32 - 1)) for _ in range(3)),
            )
        elif action == "rle":  # a run, delta, absolute run or end-of-line with extreme values spliced in
            op = draw(
                st.sampled_from([b"\xff\x11", b"\x00\x02\xff\xff", b"\x00\xff", b"\x00\x00", b"\x00\x01", b"\x00\x03"])
            )
            at = draw(st.integers(min(54, len(data)), len(data)))
            data[at:at] = op * draw(st.sampled_from([1, 2, 100, 5000]))
        elif action == "cut":
            del data[draw(st.integers(0, len(data))) :]
    return sometimes_damaged(bytes(data), draw)
