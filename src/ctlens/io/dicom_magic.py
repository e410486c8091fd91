"""Is this DICOM? From the first bytes of a file: the PS3.10 ``DICM`` magic, or a bare dataset without it.

Old (ACR-NEMA era) exports and some PACS dumps store the data set alone: no 128-byte preamble, no ``DICM`` and
often no file meta. :func:`is_raw_dataset` recognises them by their first element tags, in any of the four
encodings (implicit / explicit VR, little / big endian).

Example:
    >>> head = bytes(128) + b"DICM" + bytes(8)
    >>> looks_like_dicom(head), looks_like_dicom(b"hello world"), is_raw_dataset(b"\\x08\\x00" + bytes(30))
    (True, False, False)
"""

from __future__ import annotations

import os
import struct

__all__ = ["HEAD_BYTES", "is_raw_dataset", "looks_like_dicom", "read_head"]

HEAD_BYTES = 4096
"""How many leading bytes the checks look at."""

_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT UV".split())


def _dataset_tags(head: bytes, order: str, explicit: bool, count: int = 3) -> list[tuple[int, int]]:
    """The first ``count`` element tags of a bare data set read with one encoding (fewer where it breaks)."""
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


def is_raw_dataset(head: bytes) -> bool:
    """True when ``head`` starts a bare DICOM data set (no preamble, no ``DICM``).

    Accepted when, in one of the four encodings, it starts in group 0002 or 0008 and its first three element tags
    are in even (public) groups and strictly increasing, as PS3.5 section 7.1 requires of every data set.

    Example:
        >>> import struct
        >>> def element(group, elem, value):  # implicit VR little endian
        ...     return struct.pack("<HHI", group, elem, len(value)) + value
        >>> is_raw_dataset(element(8, 0x16, b"1.2.840.10008.5.1.4.1.1.2\\0") + element(8, 0x18, b"1.2.3\\0")
        ...                + element(0x10, 0x10, b"ANON"))
        True
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


def looks_like_dicom(head: bytes) -> bool:
    """True for a PS3.10 file (``DICM`` after the 128-byte preamble) or a bare data set (:func:`is_raw_dataset`)."""
    return (len(head) >= 132 and head[128:132] == b"DICM") or is_raw_dataset(head)


def read_head(path: str | os.PathLike[str]) -> bytes:
    """The first :data:`HEAD_BYTES` bytes of ``path`` (empty when it cannot be read), for the checks above.

    Example:
        >>> read_head("no-such-file")
        b''
    """
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError:
        return b""
