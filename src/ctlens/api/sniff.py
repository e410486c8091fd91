"""What an uploaded file is, from its first bytes (never from its name).

Example:
    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(16)), sniff(b"NRRD0004\\n"), sniff(b"hello")
    ('png', 'nrrd', None)
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

from ctlens.io.dicom_magic import looks_like_dicom, read_head

SUFFIX = {
    "dicom": ".dcm",
    "zip": ".zip",
    "nifti": ".nii",
    "nifti_gz": ".nii.gz",
    "nrrd": ".nrrd",
    "mha": ".mha",
    "png": ".png",
    "jpeg": ".jpg",
}
"""Sniffed kind -> the suffix the staged file gets (the uploaded name is never used on disk)."""

_META_KEY = re.compile(rb"^\s*(ObjectType|NDims|Comment|ObjectSubType|BinaryData)\s*=", re.MULTILINE)


def _is_nifti_header(head: bytes) -> bool:
    if len(head) >= 348:
        for order in ("<", ">"):
            if struct.unpack(order + "i", head[:4])[0] == 348 and head[344:347] in (b"n+1", b"ni1"):
                return True
    if len(head) >= 12:
        for order in ("<", ">"):
            if struct.unpack(order + "i", head[:4])[0] == 540 and head[4:7] in (b"n+2", b"ni2"):
                return True
    return False


def _gunzip_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 600)
    except zlib.error:
        return b""


def sniff(head: bytes) -> str | None:
    """``dicom``, ``zip``, ``nifti``, ``nifti_gz``, ``nrrd``, ``mha``, ``png``, ``jpeg`` or None (refused)."""
    if looks_like_dicom(head):  # PS3.10 (preamble + DICM) or a bare data set
        return "dicom"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:7] == b"NRRD000":
        return "nrrd"
    if head[:2] == b"\x1f\x8b":
        return "nifti_gz" if _is_nifti_header(_gunzip_head(head)) else None
    if _is_nifti_header(head):
        return "nifti"
    if _META_KEY.match(head) and b"ElementDataFile" in head and re.search(rb"ElementDataFile\s*=\s*LOCAL", head):
        return "mha"
    return None


def sniff_file(path: Path) -> str | None:
    """:func:`sniff` on the first bytes of ``path``."""
    return sniff(read_head(path))


def gunzipped_size(path: Path, limit: int) -> int | None:
    """Bytes a gzip file expands to, or None when it is truncated/corrupt; stops past ``limit`` (returns it + 1)."""
    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
                if total > limit:
                    return limit + 1
    except (OSError, EOFError, zlib.error):
        return None
    return total
