"""Structure-aware zip archives (DICOM uploads): member counts, names, declared sizes, nesting, bombs.

A seed is a zip of a three-slice DICOM series. A strategy changes its members (hostile names: ``..``, absolute,
drive letters, NUL, very long, duplicates, folders, symbolic links by their mode bits; many empty members; a
nested zip; a highly compressible member), then maybe rewrites raw header fields: the sizes of a local or central
directory record, the member counts or offsets of the end record, and maybe damages bytes on top.

Example:
    >>> zip_seed()[:4]
    b'PK\\x03\\x04'
"""

from __future__ import annotations

import functools
import io
import re
import struct
import zipfile
from typing import Any

from gen_ctz import mutate_bytes
from gen_dicom import dicom_seed
from hypothesis import strategies as st

__all__ = ["zip_bytes", "zip_seed"]

NAMES = [
    "../evil.dcm",
    "/abs.dcm",
    "C:/x.dcm",
    "a/../../b.dcm",
    "a\\..\\..\\b.dcm",
    "nul\x00.dcm",
    "x" * 300 + ".dcm",
    "dir/",
    "series/0.dcm",
    "",
    ".",
    "a/./b.dcm",
    "ü.dcm",
    "con.dcm",
    "nested.zip",
]
U32 = [0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**20, 2**30]


def _members() -> list[tuple[str, bytes]]:
    return [(f"series/{k}.dcm", dicom_seed("explicit", k)) for k in range(3)]


def _pack(members: list[tuple[str, bytes, int, int]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data, method, mode in members:
            info = zipfile.ZipInfo(name or "_")
            if name == "":
                info.filename = ""
            info.compress_type = method
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return out.getvalue()


@functools.cache
def zip_seed() -> bytes:
    """A valid zip of a three-slice DICOM series (deflated)."""
    return _pack([(n, d, zipfile.ZIP_DEFLATED, 0o100644) for n, d in _members()])


# (signature, field offset, width) of the header fields a zip reader trusts: local and central sizes and name
# lengths, the end record's member counts, directory size and offset
_FIELDS = [
    (b"PK\x03\x04", 18, 4),
    (b"PK\x03\x04", 22, 4),
    (b"PK\x03\x04", 26, 2),
    (b"PK\x01\x02", 20, 4),
    (b"PK\x01\x02", 24, 4),
    (b"PK\x01\x02", 28, 2),
    (b"PK\x01\x02", 42, 4),
    (b"PK\x05\x06", 8, 2),
    (b"PK\x05\x06", 10, 2),
    (b"PK\x05\x06", 12, 4),
    (b"PK\x05\x06", 16, 4),
]


def _patch_records(draw: Any, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        sig, field, width = draw(st.sampled_from(_FIELDS))
        starts = [m.start() for m in re.finditer(re.escape(sig), bytes(buf))]
        if not starts:
            continue
        at = draw(st.sampled_from(starts)) + field
        if at + width > len(buf):
            continue
        if width == 2:
            struct.pack_into("<H", buf, at, draw(st.sampled_from([0, 1, 2, 4, 500, 0xFFFF])))
        else:
            struct.pack_into("<I", buf, at, draw(st.sampled_from(U32) | st.integers(0, 2**32 - 1)))
    return bytes(buf)


@st.composite
def zip_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, ".zip")`` of a crafted archive (module doc)."""
    members = [(n, d, zipfile.ZIP_DEFLATED, 0o100644) for n, d in _members()]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["name", "link", "many", "nested", "bomb", "dup", "stored", "drop"]))
        k = draw(st.integers(0, len(members) - 1)) if members else 0
        if kind == "name" and members:
            members[k] = (draw(st.sampled_from(NAMES) | st.text(max_size=20)), *members[k][1:])
        elif kind == "link" and members:
            members[k] = (members[k][0], b"/etc/passwd", zipfile.ZIP_STORED, 0o120777)
        elif kind == "many":
            members += [(f"e{i}", b"", zipfile.ZIP_STORED, 0o100644) for i in range(draw(st.sampled_from([50, 500])))]
        elif kind == "nested":
            members.append(("series/inner.zip", zip_seed(), zipfile.ZIP_STORED, 0o100644))
        elif kind == "bomb":
            members.append(("series/zeros.dcm", bytes(draw(st.sampled_from([1 << 20, 8 << 20]))), 8, 0o100644))
        elif kind == "dup" and members:
            members.append(members[k])
        elif kind == "stored" and members:
            members[k] = (*members[k][:2], zipfile.ZIP_STORED, members[k][3])
        elif kind == "drop" and members:
            members.pop(k)
    data = _pack(members)
    if draw(st.booleans()):
        data = _patch_records(draw, data)
    if draw(st.integers(0, 3)) == 0:
        data = mutate_bytes(data, draw)
    return data, ".zip"
