"""What an uploaded file is, from its first bytes (never from its name).

Example:
    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(16)), sniff(b"NRRD0004\\n"), sniff(b"hello")
    ('png', 'nrrd', None)
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from ctlens.core.errors import CTLensError
from ctlens.io.detached_header import parse_header
from ctlens.io.dicom_magic import HEAD_BYTES, looks_like_dicom, read_head

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


def metaimage_data(head: bytes) -> str | None:
    """``local`` for a MetaImage header whose voxels follow it, ``detached`` when it names data files, ``unknown``
    when the header runs past ``head``, None when ``head`` is no MetaImage header (parsed as MetaIO does: a
    ``Comment`` that mentions LOCAL is no field).

    Example:
        >>> metaimage_data(b"NDims = 3\\nElementDataFile = LOCAL\\n")
        'local'
        >>> metaimage_data(b"NDims = 3\\nElementDataFile = a.raw\\n")
        'detached'
        >>> metaimage_data(b"NDims = 3\\nComment = ElementDataFile = LOCAL\\nElementDataFile = /etc/passwd\\n")
        'detached'
    """
    if not _META_KEY.match(head):
        return None
    try:
        info = parse_header(head)
    except CTLensError:
        # a header longer than the head (long comments): staging reads it whole and decides
        return "unknown" if len(head) >= HEAD_BYTES and b"\0" not in head else None
    return "detached" if info.data_files else "local"


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
    if metaimage_data(head) is not None:  # a detached header too: staging then checks the files it names
        return "mha"
    return None


def sniff_file(path: Path) -> str | None:
    """:func:`sniff` on the first bytes of ``path``."""
    return sniff(read_head(path))
