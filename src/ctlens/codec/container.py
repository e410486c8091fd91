"""The ``.ctz`` container: byte layout, streaming writer and checked reader (see docs/ctz_format.md).

Layout (all integers little-endian)::

    prefix   magic b"\\x89CTZ\\r\\n\\x1a\\n" | u16 major | u16 minor | u32 header_len | u32 header_crc32
    header   UTF-8 JSON (geometry, de-identified meta, codec parameters)
    slices   per slice: main stream then correction stream (ROI mode), back to back
    index    n_slices records of 28 bytes: u64 offset | u32 main_len | u32 corr_len | u32 crc32 |
             i32 bias | u8 backend | u8 predictor | u16 near
    trailer  UTF-8 JSON (statistics)
    footer   48 bytes: b"CTZFOOT\\0" | u64 index_offset | u32 n_slices | u32 index_crc32 | u64 trailer_offset |
             u32 trailer_len | u32 trailer_crc32 | u32 file_crc32 (of every byte before it) | b"CTZ!"

Every check that fails raises :class:`~ctlens.core.errors.CorruptFileError` naming the file and the part.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.ctz"
    >>> with CtzWriter(path, {"shape_yx": [1, 1]}) as w:
    ...     w.add_slice(b"ab", b"", SliceRecordMeta(backend=0, predictor=0, bias=0, near=0))
    >>> r = CtzReader(path)
    >>> r.n_slices, r.read_slice_streams(0)
    (1, (b'ab', b''))
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from ctlens.core.errors import CorruptFileError, InputNotFoundError, UnsupportedFormatError
from ctlens.io.files import atomic_output

__all__ = ["FORMAT_MAJOR", "FORMAT_MINOR", "MAGIC", "CtzReader", "CtzWriter", "SliceRecord", "SliceRecordMeta"]

MAGIC = b"\x89CTZ\r\n\x1a\n"
FORMAT_MAJOR, FORMAT_MINOR = 1, 0
PREFIX = struct.Struct("<8sHHII")
RECORD = struct.Struct("<QIIIiBBH")
FOOTER = struct.Struct("<8sQIIQIII4s")
FOOTER_MAGIC, END_MAGIC = b"CTZFOOT\x00", b"CTZ!"
_FILE_CRC_SPAN = FOOTER.size - 8  # the file CRC covers every byte before its own field


@dataclasses.dataclass(frozen=True)
class SliceRecordMeta:
    """Decoding parameters of a slice as stored in its index record."""

    backend: int
    predictor: int
    bias: int
    near: int


@dataclasses.dataclass(frozen=True)
class SliceRecord:
    """One index record: where a slice's streams are, their checksum, and how to decode them."""

    offset: int
    main_len: int
    corr_len: int
    crc32: int
    meta: SliceRecordMeta


class CtzWriter:
    """Write a .ctz file slice by slice (atomically: the file appears only when :meth:`close` succeeds)."""

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self._ctx = atomic_output(self.path)
        tmp = self._ctx.__enter__()
        self._fh: BinaryIO = open(tmp, "wb")  # noqa: SIM115 - closed in close()/__exit__
        self._crc = 0
        self._pos = 0
        self.records: list[SliceRecord] = []
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        self._write(PREFIX.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, len(head), zlib.crc32(head)))
        self._write(head)
        self.trailer: dict[str, Any] = {}
        self.trailer_bytes: bytes | None = None  # when set, written instead of ``trailer`` as JSON

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._crc = zlib.crc32(data, self._crc)
        self._pos += len(data)

    @property
    def bytes_written(self) -> int:
        """Bytes written so far."""
        return self._pos

    def add_slice(self, main: bytes, correction: bytes, meta: SliceRecordMeta) -> None:
        """Append the next slice's streams and remember its index record."""
        crc = zlib.crc32(correction, zlib.crc32(main))
        self.records.append(SliceRecord(self._pos, len(main), len(correction), crc, meta))
        self._write(main)
        self._write(correction)

    def close(self) -> None:
        """Write index, trailer and footer, then move the file into place."""
        index = b"".join(
            RECORD.pack(
                r.offset, r.main_len, r.corr_len, r.crc32, r.meta.bias, r.meta.backend, r.meta.predictor, r.meta.near
            )
            for r in self.records
        )
        index_offset = self._pos
        self._write(index)
        trailer = self.trailer_bytes
        if trailer is None:
            trailer = json.dumps(self.trailer, sort_keys=True, separators=(",", ":")).encode()
        trailer_offset = self._pos
        self._write(trailer)
        footer = FOOTER.pack(
            FOOTER_MAGIC,
            index_offset,
            len(self.records),
            zlib.crc32(index),
            trailer_offset,
            len(trailer),
            zlib.crc32(trailer),
            0,
            END_MAGIC,
        )
        head = footer[:_FILE_CRC_SPAN]
        self._write(head)
        self._fh.write(struct.pack("<I", self._crc) + END_MAGIC)
        self._fh.close()
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop the partial file."""
        self._fh.close()
        err = exc or RuntimeError("aborted")
        try:
            self._ctx.__exit__(type(err), err, err.__traceback__)
        except BaseException:  # noqa: BLE001 - the original error is what matters
            pass

    def __enter__(self) -> CtzWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if ev is None:
            self.close()
        else:
            self.abort(ev)


class CtzReader:
    """Open a .ctz file: checks prefix, header, footer, index and trailer checksums; reads slices on demand.

    The whole-file checksum is checked by :meth:`verify` (it reads every byte); each slice's own checksum is
    checked whenever it is read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputNotFoundError("no such .ctz file", path=self.path)
        self.size = self.path.stat().st_size
        with open(self.path, "rb") as fh:
            self._read_parts(fh)

    def _fail(self, reason: str) -> CorruptFileError:
        return CorruptFileError(reason, path=self.path, hint="the .ctz file is damaged or incomplete; re-create it")

    def _read_parts(self, fh: BinaryIO) -> None:
        if self.size < PREFIX.size + FOOTER.size:
            raise self._fail(f"truncated: {self.size} bytes is shorter than the fixed prefix and footer")
        magic, major, minor, head_len, head_crc = PREFIX.unpack(fh.read(PREFIX.size))
        if magic != MAGIC:
            raise self._fail("not a .ctz file (bad magic bytes)")
        if major != FORMAT_MAJOR:
            raise UnsupportedFormatError(f".ctz format version {major}.{minor} is not supported", path=self.path)
        self.version = (major, minor)
        fh.seek(self.size - FOOTER.size)
        fields = FOOTER.unpack(fh.read(FOOTER.size))
        fmagic, index_off, n, index_crc, trailer_off, trailer_len, trailer_crc, file_crc, end = fields
        if fmagic != FOOTER_MAGIC or end != END_MAGIC:
            raise self._fail("truncated or damaged: the footer is missing")
        self.file_crc = file_crc
        self.data_start = PREFIX.size + head_len
        self.index_offset = index_off
        if not (self.data_start <= index_off <= trailer_off <= self.size - FOOTER.size):
            raise self._fail("footer offsets point outside the file")
        if index_off + n * RECORD.size != trailer_off or trailer_off + trailer_len != self.size - FOOTER.size:
            raise self._fail("footer sizes do not match the file layout")
        fh.seek(PREFIX.size)
        head = fh.read(head_len)
        if len(head) != head_len or zlib.crc32(head) != head_crc:
            raise self._fail("header checksum mismatch")
        fh.seek(index_off)
        index = fh.read(n * RECORD.size)
        if zlib.crc32(index) != index_crc:
            raise self._fail("slice index checksum mismatch")
        trailer = fh.read(trailer_len)
        if zlib.crc32(trailer) != trailer_crc:
            raise self._fail("trailer (statistics) checksum mismatch")
        try:
            self.header: dict[str, Any] = json.loads(head)
            self.trailer: dict[str, Any] = json.loads(trailer)
        except ValueError as exc:  # bad UTF-8, bad JSON, an integer of more digits than Python converts
            raise self._fail(f"header or trailer is not valid JSON ({exc})") from exc
        except RecursionError:
            raise self._fail("header or trailer JSON is nested too deeply") from None
        if not isinstance(self.header, dict) or not isinstance(self.trailer, dict):
            raise self._fail("header or trailer is not a JSON object")
        self.records = []
        for k in range(n):
            off, main_len, corr_len, crc, bias, backend, predictor, near = RECORD.unpack_from(index, k * RECORD.size)
            if off < self.data_start or off + main_len + corr_len > index_off:
                raise self._fail(f"slice {k}: index points outside the slice data")
            self.records.append(
                SliceRecord(off, main_len, corr_len, crc, SliceRecordMeta(backend, predictor, bias, near))
            )

    @property
    def n_slices(self) -> int:
        """Number of slices in the file."""
        return len(self.records)

    def read_slice_streams(self, k: int, fh: BinaryIO | None = None) -> tuple[bytes, bytes]:
        """Main and correction streams of slice ``k``, checksum-verified."""
        if not 0 <= k < self.n_slices:
            raise IndexError(f"{self.path}: slice {k} out of range 0..{self.n_slices - 1}")
        rec = self.records[k]
        own = fh is None
        fh = open(self.path, "rb") if own else fh  # noqa: SIM115
        try:
            fh.seek(rec.offset)
            data = fh.read(rec.main_len + rec.corr_len)
        finally:
            if own:
                fh.close()
        if len(data) != rec.main_len + rec.corr_len or zlib.crc32(data) != rec.crc32:
            raise self._fail(f"slice {k}: checksum mismatch")
        return data[: rec.main_len], data[rec.main_len :]

    def verify(self) -> None:
        """Check the whole-file CRC-32 (reads the file once)."""
        crc = 0
        remaining = self.size - 8
        with open(self.path, "rb") as fh:
            while remaining > 0:
                chunk = fh.read(min(remaining, 1 << 22))
                if not chunk:
                    break
                crc = zlib.crc32(chunk, crc)
                remaining -= len(chunk)
        if remaining != 0 or crc != self.file_crc:
            raise self._fail("whole-file checksum mismatch")

    def open(self) -> BinaryIO:
        """A binary handle for several :meth:`read_slice_streams` calls."""
        return open(self.path, "rb")  # noqa: SIM115


def file_size(path: str | Path) -> int:
    """Size of a file in bytes."""
    return os.path.getsize(path)
