"""Crafted ``.ctz`` files for the fuzz and regression tests: any header, index and streams, every CRC valid.

:func:`pack_ctz` lays out prefix, header bytes, streams, index, trailer and footer exactly as
:class:`ctlens.codec.container.CtzWriter` does, and computes every checksum, so a crafted file passes the
container's CRC checks and only the header rules (:mod:`ctlens.codec.header_rules`) and the decoders stand
between it and the user.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from ctlens.codec import encode_volume
    >>> from ctlens.codec.container import CtzReader
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = encode_volume(np.zeros((2, 4, 4), np.int16), d / "a.ctz")
    >>> parts = unpack_ctz((d / "a.ctz").read_bytes())
    >>> pack_ctz(**parts) == (d / "a.ctz").read_bytes()
    True
    >>> parts["header"]["shape_yx"] = [200000, 200000]
    >>> _ = (d / "b.ctz").write_bytes(pack_ctz(**parts)); CtzReader(d / "b.ctz").verify()
"""

from __future__ import annotations

import json
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

from ctlens.codec.container import FOOTER, FOOTER_MAGIC, MAGIC, PREFIX, RECORD, CtzReader, SliceRecordMeta

__all__ = ["pack_ctz", "unpack_ctz"]

Stream = tuple[bytes, bytes, SliceRecordMeta]


def _json(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def pack_ctz(
    header: Any,
    streams: list[Stream],
    trailer: Any = None,
    *,
    major: int = 1,
    minor: int = 0,
    offsets: list[int] | None = None,
) -> bytes:
    """A ``.ctz`` file's bytes from a header (dict or raw bytes), slice streams and a trailer; CRCs computed.

    ``offsets`` overrides the index offsets (overlapping or out-of-order records) while the bytes stay laid out
    back to back.
    """
    head = _json(header)
    body = bytearray(PREFIX.pack(MAGIC, major, minor, len(head), zlib.crc32(head)) + head)
    records = []
    for k, (main, corr, meta) in enumerate(streams):
        off = len(body) if offsets is None else offsets[k]
        crc = zlib.crc32(corr, zlib.crc32(main))
        records.append(RECORD.pack(off, len(main), len(corr), crc, meta.bias, meta.backend, meta.predictor, meta.near))
        body += main + corr
    index = b"".join(records)
    index_offset = len(body)
    body += index
    tail = _json({"stats": {}} if trailer is None else trailer)
    trailer_offset = len(body)
    body += tail
    footer = FOOTER.pack(
        FOOTER_MAGIC,
        index_offset,
        len(streams),
        zlib.crc32(index),
        trailer_offset,
        len(tail),
        zlib.crc32(tail),
        0,
        b"CTZ!",
    )
    body += footer[: FOOTER.size - 8]
    body += struct.pack("<I", zlib.crc32(bytes(body))) + b"CTZ!"
    return bytes(body)


def unpack_ctz(data: bytes) -> dict[str, Any]:
    """The parts of a valid ``.ctz`` (``header`` dict, ``streams``, ``trailer``), the inverse of :func:`pack_ctz`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.ctz"
        path.write_bytes(data)
        reader = CtzReader(path)
        streams = [(*reader.read_slice_streams(k), reader.records[k].meta) for k in range(reader.n_slices)]
        trailer_bytes = data[reader.index_offset + RECORD.size * reader.n_slices : len(data) - FOOTER.size]
        return {"header": reader.header, "streams": streams, "trailer": trailer_bytes}
