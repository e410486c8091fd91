"""The HTTP side of the DICOMweb client: one server root, its auth, and requests with hard limits.

:class:`DicomWebConnection` sends one request at a time with a connect/read timeout (``timeout``), an overall
``deadline`` that also cuts off a server dripping bytes (:class:`~ctlens.io.http_deadline.Deadline`), retries
with backoff after connection failures and 502/503/504 answers (never after a 4xx), and a byte limit checked
against the Content-Length before the body is read and again while it streams. Bodies are asked for
uncompressed (``Accept-Encoding: identity``); one that is compressed anyway (one gzip or deflate layer) is
inflated here in bounded steps, so the limit counts the decoded bytes and a small "zip bomb" never expands in
memory at once; other or stacked encodings are refused. Each failure becomes one
:class:`~ctlens.core.errors.PacsError` line naming the request's URL without credentials.
:class:`~ctlens.io.dicomweb.DicomWebClient` builds the DICOMweb services on it.

Example:
    >>> DicomWebConnection("dicomweb+http://user:secret@pacs.example:8042/dicom-web/").url
    'http://pacs.example:8042/dicom-web'
    >>> strip_credentials("cannot reach https://u:p@host/x")
    'cannot reach https://host/x'
"""

from __future__ import annotations

import contextlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from ctlens.core.errors import PacsError
from ctlens.io.http_deadline import Deadline
from ctlens.io.multipart import MultipartBody, media_type

GiB = 1024**3
ACCEPT_JSON = "application/dicom+json, application/json"
JSON_TYPES = ("application/dicom+json", "application/json")
RETRY_STATUS = frozenset({502, 503, 504})
RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
MAX_JSON_BYTES = 64 * 1024**2
"""Most bytes of one JSON answer (search results, series metadata), whatever ``max_bytes`` says: parsed JSON
takes about ten times its size in memory."""
DECODE_STEP = 1024 * 1024
"""Most decoded bytes produced from a compressed body in one step."""
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ProgressCallback = Callable[[int, int | None], None]
"""``progress(bytes_received, bytes_announced_or_None)``."""

_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")
_AUTH_HINT = "check the token / credentials (CTLENS_DICOMWEB_TOKEN or CTLENS_DICOMWEB_USERNAME / _PASSWORD)"
_STATUS = {
    400: ("the server rejected the request as malformed (HTTP 400)", "check the UIDs and search values"),
    401: ("the server refused access (HTTP 401)", _AUTH_HINT),
    403: ("the server forbids access (HTTP 403)", _AUTH_HINT),
    404: ("no such study/series (HTTP 404)", "check the StudyInstanceUID / SeriesInstanceUID and the DICOMweb root"),
    406: ("the server cannot send the requested representation (HTTP 406)", "the server lacks WADO-RS support"),
    413: ("the server refused the request as too large (HTTP 413)", "send fewer instances at a time"),
    415: ("the server does not accept this content type (HTTP 415)", "the server lacks STOW-RS support"),
}


def strip_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed.

    Example:
        >>> strip_credentials("http://bob:pw@host:8042/dicom-web")
        'http://host:8042/dicom-web'
    """
    return _USERINFO.sub("", text)


class DicomWebConnection:
    """A DICOMweb root URL with its auth and limits (see the module docstring); the base of the client.

    Example:
        >>> DicomWebConnection("https://pacs.example/dicom-web", token="t", deadline=60).deadline
        60.0
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        deadline: float = 600.0,
        retries: int = 2,
        max_bytes: int = 4 * GiB,
    ) -> None:
        address = url.strip()
        if address.lower().startswith("dicomweb+"):
            address = address[len("dicomweb+") :]
        try:
            parts = urlsplit(address)
            valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # an invalid port or IPv6 literal, often an unescaped / ? # in a password
            parts, valid = None, False
        if parts is None or not valid or "@" in "".join(parts[2:]):
            shown = strip_credentials(url)
            raise PacsError(
                "not a DICOMweb address",
                path=None if "@" in shown else shown,  # an unparsable user:password@ part stays hidden
                hint="give http(s)://host:port/dicom-web; percent-encode / ? # @ : in a user name or password",
            )
        if parts.username and username is None:
            username, password = unquote(parts.username), unquote(parts.password or "")
        netloc = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))
        self.token, self.username, self.password = token or None, username or None, password
        self.timeout, self.deadline = float(timeout), float(deadline)
        self.retries, self.max_bytes = max(int(retries), 0), int(max_bytes)
        if self.timeout <= 0 or self.deadline <= 0 or self.max_bytes <= 0:
            raise PacsError("timeout, deadline and max_bytes must be positive", path=self.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _redact(self, text: str) -> str:
        text = strip_credentials(text)
        for secret in (self.token, self.password):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _headers(self) -> dict[str, str]:
        from ctlens import __version__

        headers = {"User-Agent": f"ctlens/{__version__}", "Accept-Encoding": "identity"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    @contextlib.contextmanager
    def _send(
        self,
        path: str,
        deadline: Deadline,
        *,
        method: str = "GET",
        accept: str = ACCEPT_JSON,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: MultipartBody | None = None,
        also_ok: tuple[int, ...] = (),
    ) -> Iterator[httpx.Response]:
        """One request with retries; yields the streamed response once its status is acceptable."""
        where = self.url + path
        auth = httpx.BasicAuth(self.username, self.password or "") if self.username and not self.token else None
        request_headers = {**self._headers(), "Accept": accept, **(headers or {})}
        limits = httpx.Limits(max_keepalive_connections=0)  # a fresh connection per request: the deadline sees it
        with httpx.Client(auth=auth, limits=limits, follow_redirects=False) as client:
            for attempt in range(self.retries + 1):
                if deadline.expired:
                    raise self._deadline_error(where)
                last = attempt == self.retries
                timeout = httpx.Timeout(self.timeout, connect=max(min(self.timeout, deadline.remaining()), 0.01))
                request = client.build_request(
                    method, self.url + path, params=params, headers=request_headers, content=body, timeout=timeout,
                    extensions={"trace": deadline.trace},
                )  # fmt: skip
                try:
                    response = client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    if deadline.expired:
                        raise self._deadline_error(where) from None
                    if last or not isinstance(exc, RETRY_ERRORS):
                        raise self._transport_error(exc, where, attempt + 1) from None
                    deadline.wait(0.5 * 2**attempt)
                    continue
                if response.status_code in RETRY_STATUS and not last:
                    response.close()
                    deadline.wait(_retry_after(response, 0.5 * 2**attempt))
                    continue
                break
            try:
                if response.status_code >= 300 and response.status_code not in also_ok:
                    raise self._status_error(response.status_code, where, attempt + 1)
                yield response
            finally:
                response.close()

    def _check_length(self, response: httpx.Response, limit: int, where: str) -> int | None:
        """The announced Content-Length; PacsError (before reading anything) when over ``limit`` or invalid."""
        value = response.headers.get("content-length")
        if value is None:
            return None
        if not value.strip().isdigit():
            raise PacsError(f"invalid Content-Length {value[:30]!r}", path=where, hint="the server's answer is broken")
        length = int(value)
        if length > limit:
            raise PacsError(
                f"the answer announces {length} bytes, more than the limit of {limit} bytes",
                path=where,
                hint="raise CTLENS_DICOMWEB_MAX_BYTES or retrieve one series at a time",
            )
        return length

    def _chunks(
        self,
        response: httpx.Response,
        deadline: Deadline,
        where: str,
        limit: int,
        progress: ProgressCallback | None = None,
        total: int | None = None,
    ) -> Iterator[bytes]:
        """The body's chunks, checking the deadline and the byte limit as they arrive."""
        received = 0
        try:
            for chunk in _decoded(response, where):
                if deadline.expired:
                    raise self._deadline_error(where)
                received += len(chunk)
                if received > limit:
                    raise PacsError(
                        f"the answer is larger than the limit of {limit} bytes",
                        path=where,
                        hint="raise CTLENS_DICOMWEB_MAX_BYTES or retrieve one series at a time",
                    )
                if progress is not None:
                    progress(received, total)
                yield chunk
        except httpx.HTTPError as exc:
            if deadline.expired:
                raise self._deadline_error(where) from None
            raise self._transport_error(exc, where, 1) from None
        if deadline.expired:  # the watchdog's shutdown reads as an ordinary end of the body
            raise self._deadline_error(where)

    def _read_json(self, response: httpx.Response, deadline: Deadline, where: str) -> Any:
        if response.status_code == 204 or response.headers.get("content-length", "").strip() == "0":
            return []
        kind = media_type(response.headers.get("content-type", ""))
        if kind not in JSON_TYPES:
            raise PacsError(
                f"expected a DICOM JSON answer, got {kind or 'no content type'!r}",
                path=where,
                hint="check the DICOMweb root URL (the server may have sent a login or error page)",
            )
        limit = min(self.max_bytes, MAX_JSON_BYTES)
        self._check_length(response, limit, where)
        data = bytearray()
        for chunk in self._chunks(response, deadline, where, limit):
            data += chunk
        if not data.strip():
            return []
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            detail = f"{exc.msg} at byte {exc.pos}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            detail = "nested too deeply" if isinstance(exc, RecursionError) else detail
            raise PacsError(
                f"the answer is not valid JSON ({detail})",
                path=where,
                hint="the server sent a malformed answer; report it to the archive's administrator",
            ) from None

    def _get_json(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        where = self.url + path
        with Deadline(self.deadline) as deadline, self._send(path, deadline, params=params) as response:
            data = self._read_json(response, deadline, where)
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise PacsError("the answer is not a list of DICOM JSON datasets", path=where)
        return data

    def _deadline_error(self, where: str) -> PacsError:
        return PacsError(
            f"no complete answer within the deadline of {self.deadline:g} s",
            path=where,
            hint="the server is too slow or stalled; raise CTLENS_DICOMWEB_DEADLINE or retrieve less at a time",
            timed_out=True,
        )

    def _status_error(self, status: int, where: str, attempts: int) -> PacsError:
        if status in _STATUS:
            reason, hint = _STATUS[status]
        elif status >= 500:
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            reason, hint = f"the server failed (HTTP {status}){tries}", "try again later; the server's log has details"
        elif 300 <= status < 400:
            reason, hint = f"the server redirects (HTTP {status})", "use the final DICOMweb root URL"
        else:
            reason, hint = f"unexpected answer (HTTP {status})", "check the DICOMweb root URL"
        return PacsError(reason, path=where, hint=hint, http_status=status)

    def _transport_error(self, exc: httpx.HTTPError, where: str, attempts: int) -> PacsError:
        detail = self._redact(str(exc)) or type(exc).__name__
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if isinstance(exc, httpx.ConnectTimeout):
            reason, hint = f"cannot connect within {self.timeout:g} s (timeout){tries}", "check the host and port"
        elif isinstance(exc, httpx.TimeoutException):
            reason = f"the server sent nothing for {self.timeout:g} s (timeout)"
            hint = "the server is overloaded or stalled; raise CTLENS_DICOMWEB_TIMEOUT or try later"
        elif isinstance(exc, httpx.ConnectError):
            reason, hint = f"cannot connect: {detail}{tries}", "check the URL and that the DICOMweb server is running"
        elif isinstance(exc, httpx.RemoteProtocolError):
            reason, hint = f"the connection broke before the answer was complete ({detail})", "try again"
        else:
            reason, hint = f"HTTP failure ({type(exc).__name__}: {detail})", "try again"
        return PacsError(reason, path=where, hint=hint, timed_out=isinstance(exc, httpx.TimeoutException))


def _retry_after(response: httpx.Response, default: float) -> float:
    """The answer's Retry-After in seconds (capped at 30), or ``default``."""
    value = response.headers.get("retry-after", "").strip()
    return min(float(value), 30.0) if value.isdigit() else default


def _decoded(response: httpx.Response, where: str) -> Iterator[bytes]:
    """The body's bytes with its Content-Encoding undone: none, or one gzip / deflate layer (bounded steps)."""
    header = response.headers.get("content-encoding", "")
    encodings = [e.strip().lower() for e in header.split(",") if e.strip().lower() not in ("", "identity")]
    if not encodings:
        yield from response.iter_raw()
        return
    if len(encodings) > 1 or encodings[0] not in _WBITS:
        raise PacsError(
            f"the answer is compressed as {header[:40]!r}, which is not accepted",
            path=where,
            hint="configure the server (or its proxy) to send uncompressed or gzip answers",
        )
    yield from inflate(response.iter_raw(), encodings[0], where)


def inflate(raw: Iterable[bytes], encoding: str, where: str | None = None) -> Iterator[bytes]:
    """Decode a ``gzip`` or ``deflate`` body given in chunks, at most :data:`DECODE_STEP` bytes at a time.

    Example:
        >>> body = zlib.compress(bytes(3 * DECODE_STEP))
        >>> [len(c) for c in inflate([body[:10], body[10:]], "deflate")]
        [1048576, 1048576, 1048576]
    """
    decoder = zlib.decompressobj(_WBITS[encoding])
    started = False
    for data in raw:
        more = bool(data)
        while more:
            try:
                out = decoder.decompress(data, DECODE_STEP)
            except zlib.error as exc:
                if encoding == "deflate" and not started:  # deflate without the zlib wrapper (RFC 9110 allows)
                    decoder, started = zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                raise PacsError(f"the compressed answer is corrupt ({exc})", path=where, hint="try again") from None
            started = True
            data = decoder.unconsumed_tail
            if out:
                yield out
            if decoder.eof:
                return  # bytes after the end of the compressed stream are ignored
            more = bool(data) or len(out) == DECODE_STEP
    if started:
        raise PacsError("the compressed answer is truncated", path=where, hint="the connection broke; try again")
