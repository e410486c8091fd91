"""Hostile upload bodies: zip bomb, path traversal, symlink, empty, wrong magic, pixel bomb."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image


def zip_bomb(megabytes: int = 40) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("series/1.dcm", b"\0" * (megabytes << 20))
    return buf.getvalue()


def traversal_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok/1.dcm", b"\0" * 128 + b"DICM" + b"\0" * 64)
        z.writestr("../../escaped.dcm", b"\0" * 128 + b"DICM" + b"\0" * 64)
    return buf.getvalue()


def symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("link.dcm")
        info.external_attr = (0o120777 << 16) | 0  # S_IFLNK
        z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def not_dicom_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", b"hello")
    return buf.getvalue()


def pixel_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (Pillow must refuse it before decoding)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])  # 'IHDR' + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def truncated_dicom() -> bytes:
    """The DICOM preamble and magic, then garbage: sniffed as DICOM, refused by the reader."""
    return b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 10


def bare_data_set_then_garbage() -> bytes:
    """Three valid implicit-VR elements (a bare data set, no preamble), then a length that runs off the end."""

    def element(group: int, elem: int, value: bytes) -> bytes:
        return struct.pack("<HHI", group, elem, len(value)) + value

    head = element(8, 0x16, b"1.2.840.10008.5.1.4.1.1.2\0") + element(8, 0x18, b"1.2.3.4\0") + element(8, 0x60, b"CT")
    return head + struct.pack("<HHI", 0x28, 0x10, 0x7FFFFFF0) + b"\x01" * 64
