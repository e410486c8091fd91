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

HEAD_BYTES = 4096
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


_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT UV".split())


def _dataset_tags(head: bytes, order: str, explicit: bool, count: int = 3) -> list[tuple[int, int]]:
    """The first ``count`` element tags of a raw DICOM dataset read with one encoding (fewer where it breaks)."""
    tags: list[tuple[int, int]] = []
    pos = 0
    while len(tags) < count and pos + 8 <= len(head):
        group, element = struct.unpack_from(order + "HH", head, pos)
        if explicit:
            vr = head[pos + 4 : pos + 6]
            if vr not in _VRS:
                break
            if vr in _LONG_VRS:
                if pos + 12 > len(head):
                    break
                length, pos = struct.unpack_from(order + "I", head, pos + 8)[0], pos + 12
            else:
                length, pos = struct.unpack_from(order + "H", head, pos + 6)[0], pos + 8
        else:
            length, pos = struct.unpack_from(order + "I", head, pos + 4)[0], pos + 8
        tags.append((group, element))
        if length == 0xFFFFFFFF:  # undefined length (a sequence): enough has been seen
            break
        pos += length
    return tags


def _is_raw_dataset(head: bytes) -> bool:
    """A DICOM dataset stored without the 128-byte preamble and ``DICM`` (ACR-NEMA era and some exports).

    Accepted when, in one of the four encodings, it starts in group 0002 or 0008 and its first three element
    tags are even-group and strictly increasing, as PS3.5 section 7.1 requires of every dataset.
    """
    for order in ("<", ">"):
        for explicit in (True, False):
            tags = _dataset_tags(head, order, explicit)
            if (
                len(tags) == 3
                and tags[0][0] in (0x0002, 0x0008)
                and all(group % 2 == 0 and group <= 0x7FE0 for group, _ in tags)
                and tags == sorted(set(tags))
            ):
                return True
    return False


def _gunzip_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 600)
    except zlib.error:
        return b""


def sniff(head: bytes) -> str | None:
    """``dicom``, ``zip``, ``nifti``, ``nifti_gz``, ``nrrd``, ``mha``, ``png``, ``jpeg`` or None (refused)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
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
    if _is_raw_dataset(head):
        return "dicom"
    if _META_KEY.match(head) and b"ElementDataFile" in head and re.search(rb"ElementDataFile\s*=\s*LOCAL", head):
        return "mha"
    return None


def sniff_file(path: Path) -> str | None:
    """:func:`sniff` on the first bytes of ``path``."""
    with open(path, "rb") as f:
        return sniff(f.read(HEAD_BYTES))


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
