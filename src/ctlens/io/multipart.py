"""``multipart/related`` bodies (RFC 2387, RFC 2046 section 5.1): a streaming reader and a streaming writer.

The reader takes the body as an iterator of byte chunks (an HTTP response being received) and writes each
part's body to its own file as the bytes arrive, so a series of any size passes through a few kilobytes of
memory. It enforces a total byte limit and turns every malformed body into a one-line
:class:`~ctlens.core.errors.PacsError`: no boundary in the Content-Type, a body that never shows the boundary,
part headers that are not headers, a part of the wrong content type, and a body that ends before its closing
boundary (a truncated answer). The writer produces the body of a DICOMweb STOW-RS request with a known length.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> body = MultipartBody([b"first", b"second"], "application/dicom")
    >>> parts = list(iter_parts(body, body.content_type, folder, part_type="application/dicom"))
    >>> [p.path.read_bytes() for p in parts], len(b"".join(body)) == body.length
    ([b'first', b'second'], True)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from ctlens.core.errors import PacsError

CRLF = b"\r\n"
MAX_HEADER_BYTES = 64 * 1024
"""Most bytes of one part's header block (the servers' are a few hundred)."""
MAX_PREAMBLE_BYTES = 64 * 1024
"""Most bytes before the first boundary; a body that shows none by then is not multipart."""
MAX_PADDING_BYTES = 1024
"""Most transport padding (spaces, tabs) accepted after a boundary."""
CHUNK_BYTES = 1024 * 1024
"""Size of the chunks :class:`MultipartBody` reads files in."""


@dataclass(frozen=True)
class Part:
    """One received part: its headers (names lower-case), the file holding its body and the body's size."""

    index: int
    headers: dict[str, str]
    path: Path
    size: int

    @property
    def content_type(self) -> str | None:
        """The part's media type, lower-case, without parameters (None when the part has no Content-Type)."""
        value = self.headers.get("content-type")
        return media_type(value) if value else None


def media_type(content_type: str) -> str:
    """The media type of a Content-Type value, lower-case and without parameters.

    Example:
        >>> media_type('Multipart/Related; type="application/dicom"; boundary=x')
        'multipart/related'
    """
    return content_type.split(";", 1)[0].strip().lower()


def content_type_params(content_type: str) -> dict[str, str]:
    """The parameters of a Content-Type value (names lower-case, quotes removed).

    Example:
        >>> content_type_params('multipart/related; type="application/dicom"; boundary="a b"')
        {'type': 'application/dicom', 'boundary': 'a b'}
    """
    message = Message()
    message["content-type"] = content_type
    params = message.get_params(header="content-type") or []
    return {str(name).lower(): str(value) for name, value in params[1:]}


def boundary_of(content_type: str, *, source: str | None = None) -> str:
    """The boundary of a ``multipart/related`` Content-Type; PacsError when it is another type or has none.

    Example:
        >>> boundary_of("multipart/related; boundary=abc")
        'abc'
        >>> boundary_of("text/html")
        Traceback (most recent call last):
        ...
        ctlens.core.errors.PacsError: expected a multipart/related answer, got 'text/html' (...)
    """
    kind = media_type(content_type) if content_type else ""
    if kind != "multipart/related":
        raise PacsError(
            f"expected a multipart/related answer, got {kind or 'no content type'!r}",
            path=source,
            hint="the server does not speak WADO-RS at this URL; check the DICOMweb root",
        )
    boundary = content_type_params(content_type).get("boundary", "")
    if not 0 < len(boundary) <= 70 or not boundary.isascii() or "\r" in boundary or "\n" in boundary:
        raise PacsError(
            "the multipart answer has no valid boundary in its Content-Type",
            path=source,
            hint="the server's answer is malformed; report it to the archive's administrator",
        )
    return boundary


class _Buffer:
    """The not yet consumed bytes of the body, refilled from the chunk iterator, counting against the limit."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int | None, source: str | None) -> None:
        self._chunks = iter(chunks)
        self._max_bytes = max_bytes
        self._source = source
        self.data = bytearray()
        self.total = 0

    def fill(self) -> bool:
        """Append the next non-empty chunk; False when the body has ended."""
        for chunk in self._chunks:
            if not chunk:
                continue
            self.total += len(chunk)
            if self._max_bytes is not None and self.total > self._max_bytes:
                raise PacsError(
                    f"the answer is larger than the limit of {self._max_bytes} bytes",
                    path=self._source,
                    hint="raise CTLENS_DICOMWEB_MAX_BYTES or retrieve one series at a time",
                )
            self.data += chunk
            return True
        return False

    def error(self, reason: str) -> PacsError:
        return PacsError(reason, path=self._source, hint="the server sent a malformed multipart answer")

    def truncated(self) -> PacsError:
        return PacsError(
            f"the multipart answer ended after {self.total} bytes without its closing boundary (truncated)",
            path=self._source,
            hint="the connection broke or the server stopped sending; try again",
        )

    def need(self, n: int) -> None:
        """Make at least ``n`` bytes available, or raise the truncation error."""
        while len(self.data) < n:
            if not self.fill():
                raise self.truncated()


class _Parser:
    """The states of RFC 2046's grammar, one method each; ``delimiter`` is ``--boundary``."""

    def __init__(self, buffer: _Buffer, boundary: str) -> None:
        self.buf = buffer
        self.delimiter = b"--" + boundary.encode("latin-1")
        self.body_end = CRLF + self.delimiter

    def skip_preamble(self) -> None:
        data = self.buf.data
        while True:
            if data.startswith(self.delimiter):
                del data[: len(self.delimiter)]
                return
            found = data.find(self.body_end)
            if found >= 0:
                del data[: found + len(self.body_end)]
                return
            if len(data) > MAX_PREAMBLE_BYTES:
                raise self.buf.error(f"no multipart boundary in the first {MAX_PREAMBLE_BYTES} bytes (garbage)")
            if not self.buf.fill():
                what = "is empty" if self.buf.total == 0 else "never shows its boundary"
                raise self.buf.error(f"the multipart answer {what} ({self.buf.total} bytes)")

    def is_close_delimiter(self) -> bool:
        """After a delimiter: True for ``--`` (the last part is done), False for padding + CRLF (a part follows)."""
        data = self.buf.data
        self.buf.need(2)
        if data[:2] == b"--":
            del data[:2]
            return True
        padding = 0
        while data[:1] in (b" ", b"\t"):
            del data[:1]
            padding += 1
            if padding > MAX_PADDING_BYTES:
                raise self.buf.error("too much padding after a multipart boundary (garbage)")
            self.buf.need(2)
        if data[:2] != CRLF:
            raise self.buf.error(f"unexpected bytes {bytes(data[:8])!r} after a multipart boundary (garbage)")
        del data[:2]
        return False

    def read_headers(self) -> dict[str, str]:
        data = self.buf.data
        while True:
            if data.startswith(CRLF):  # a part without headers
                del data[:2]
                return {}
            found = data.find(CRLF + CRLF)
            if found >= 0:
                block = bytes(data[:found])
                del data[: found + 4]
                return self._parse_headers(block)
            if len(data) > MAX_HEADER_BYTES:
                raise self.buf.error(f"part headers longer than {MAX_HEADER_BYTES} bytes (garbage)")
            if not self.buf.fill():
                raise self.buf.truncated()

    def _parse_headers(self, block: bytes) -> dict[str, str]:
        headers: dict[str, str] = {}
        name = ""
        for line in block.decode("latin-1").split("\r\n"):
            if line[:1] in (" ", "\t") and name:  # folded continuation line
                headers[name] += " " + line.strip()
                continue
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not key or any(c.isspace() for c in key):
                raise self.buf.error(f"part header line {line[:40]!r} is not 'Name: value' (garbage)")
            name = key.lower()
            headers[name] = value.strip()
        return headers

    def copy_body(self, out: BinaryIO) -> int:
        """Write the part's body to ``out`` up to the next delimiter (consumed); the body's size."""
        data = self.buf.data
        keep = len(self.body_end) - 1  # a delimiter may straddle two chunks
        size = 0
        while True:
            found = data.find(self.body_end)
            if found >= 0:
                out.write(data[:found])
                del data[: found + len(self.body_end)]
                return size + found
            if len(data) > keep:
                n = len(data) - keep
                out.write(data[:n])
                del data[:n]
                size += n
            if not self.buf.fill():
                raise self.buf.truncated()


def iter_parts(
    chunks: Iterable[bytes],
    content_type: str,
    folder: str | os.PathLike[str],
    *,
    part_type: str | None = None,
    max_bytes: int | None = None,
    source: str | None = None,
) -> Iterator[Part]:
    """Read a ``multipart/related`` body part by part, writing each part's body to a hidden file in ``folder``.

    ``content_type`` is the body's Content-Type (it carries the boundary). ``part_type`` (``application/dicom``)
    is the media type every part must have: the body's ``type`` parameter and each part's Content-Type, where
    present, must match it. ``max_bytes`` limits the whole body; ``source`` names it in messages. Each yielded
    :class:`Part` names a file (``.part-*.tmp``) that now belongs to the caller (rename or delete it); a part
    that fails half-way is deleted here before the :class:`~ctlens.core.errors.PacsError` is raised. Reading
    stops at the closing boundary (an epilogue is not read).

    Example:
        >>> import tempfile
        >>> body = [b"--b\\r\\nContent-Type: text/plain\\r\\n\\r\\nhel", b"lo\\r\\n--b--\\r\\n"]
        >>> [(p.content_type, p.path.read_bytes()) for p in iter_parts(body, "multipart/related; boundary=b",
        ...                                                               tempfile.mkdtemp())]
        [('text/plain', b'hello')]
    """
    boundary = boundary_of(content_type, source=source)
    declared = content_type_params(content_type).get("type")
    if part_type is not None and declared is not None and media_type(declared) != part_type.lower():
        raise PacsError(
            f"expected parts of type {part_type}, the answer declares {declared!r}",
            path=source,
            hint="ask for another representation or check the server's DICOMweb settings",
        )
    parser = _Parser(_Buffer(chunks, max_bytes, source), boundary)
    parser.skip_preamble()
    index = 0
    while not parser.is_close_delimiter():
        headers = parser.read_headers()
        kind = headers.get("content-type")
        if part_type is not None and kind is not None and media_type(kind) != part_type.lower():
            raise PacsError(
                f"part {index + 1} of the answer is {media_type(kind)!r}, expected {part_type}",
                path=source,
                hint="the server sent something other than what was asked for",
            )
        path = Path(folder) / f".part-{uuid.uuid4().hex}.tmp"
        try:
            with open(path, "wb") as out:
                size = parser.copy_body(out)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        yield Part(index, headers, path, size)
        index += 1


class MultipartBody:
    """A ``multipart/related`` body built from bytes and files, streamed in chunks, with its exact length.

    Iterating it again starts over (files are re-read), so a request can be retried. The boundary is random.

    Example:
        >>> body = MultipartBody([b"abc"], "application/dicom", boundary="XYZ")
        >>> body.content_type
        'multipart/related; type="application/dicom"; boundary=XYZ'
        >>> b"".join(body)
        b'--XYZ\\r\\nContent-Type: application/dicom\\r\\nContent-Length: 3\\r\\n\\r\\nabc\\r\\n--XYZ--\\r\\n'
    """

    def __init__(self, items: Sequence[bytes | Path], part_type: str, *, boundary: str | None = None) -> None:
        self.items = list(items)
        self.part_type = part_type
        self.boundary = boundary or f"ctlens-{uuid.uuid4().hex}"
        self.sizes = [len(item) if isinstance(item, bytes) else Path(item).stat().st_size for item in self.items]

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="{self.part_type}"; boundary={self.boundary}'

    def _head(self, size: int) -> bytes:
        return f"--{self.boundary}\r\nContent-Type: {self.part_type}\r\nContent-Length: {size}\r\n\r\n".encode(
            "latin-1"
        )

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode("latin-1")

    @property
    def length(self) -> int:
        """The body's size in bytes (its Content-Length)."""
        heads = sum(len(self._head(size)) + len(CRLF) for size in self.sizes)
        return heads + sum(self.sizes) + len(self._tail())

    def __iter__(self) -> Iterator[bytes]:
        for item, size in zip(self.items, self.sizes, strict=True):
            yield self._head(size)
            if isinstance(item, bytes):
                yield item
            else:
                sent = 0
                with open(item, "rb") as fh:
                    while chunk := fh.read(CHUNK_BYTES):
                        sent += len(chunk)
                        yield chunk
                if sent != size:
                    raise PacsError(f"the file changed size while being sent ({size} -> {sent} bytes)", path=item)
            yield CRLF
        yield self._tail()
