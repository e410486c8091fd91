"""Structure-aware multipart requests to the service's upload routes, and the real service that answers them.

A request (``form_bytes``) is a JSON document ``{"path", "content_type", "body" (latin-1 text)}``: a multipart body
for ``POST /api/analyze`` (``files`` / ``file`` / ``series``), ``POST /api/images`` (``file``) or
``POST /api/chat`` (``message``, ``study_id``, ``stream``, ``provider``, ``images``) whose field values are pushed
to extremes (empty, 1 MB, NUL bytes, non-UTF-8, lone surrogates, wrong types), whose headers are odd (file names
with ``..`` / NUL / 10 kB, missing or duplicate ``Content-Disposition``, odd ``Content-Type``, many fields), or
whose framing is broken (missing closing boundary, boundary inside a value, a boundary of 200 characters,
a ``Content-Type`` without boundary). :func:`post_form` sends it to a real ctlens service on 127.0.0.1 (started
once per process in its own temporary folder) and checks the answer: never a 5xx, always a JSON body.

Example:
    >>> json.loads(form_seed())["path"]
    '/api/analyze'
"""

from __future__ import annotations

import atexit
import base64
import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gen_dicom import dicom_seed
from gen_image import png_seed
from hypothesis import strategies as st

__all__ = ["form_bytes", "form_seed", "post_form"]

VALUES = [
    b"",
    b"0",
    b"1",
    b"true",
    b"offline",
    b"auto",
    b"x" * 5000,
    b"x" * 1_000_000,
    b"\x00",
    b"\xff\xfe\xfd",
    b"\xed\xa0\x80",  # a lone surrogate in UTF-8 form
    b"acq 2",
    b"-1",
    b"99999999999999999999",
    b"../../etc/passwd",
    b"1.2.3.2",
    b"{}",
    b"\r\n\r\n",
]
FILENAMES = ["a.dcm", "../../x.dcm", "a\x00b.dcm", "x" * 10_000 + ".dcm", "", "C:\\a\\b.png", "é.nii.gz", "a.png"]
FIELDS = {
    "/api/analyze": ["files", "file", "series"],
    "/api/images": ["file"],
    "/api/chat": ["message", "study_id", "stream", "provider", "images"],
}


def _part(name: str, value: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"Content-Disposition: {disposition}\r\n"
    if ctype is not None:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + value


def _body(parts: list[bytes], boundary: bytes, close: bool = True) -> bytes:
    out = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return out + (b"--" + boundary + b"--\r\n" if close else b"")


def _request(path: str, ctype: str, body: bytes) -> bytes:
    return json.dumps({"path": path, "content_type": ctype, "body": base64.b64encode(body).decode()}).encode()


def form_seed() -> bytes:
    """A valid upload of one DICOM slice to ``POST /api/analyze``."""
    b = b"fuzzboundary"
    body = _body([_part("files", dicom_seed(), "a.dcm", "application/dicom")], b)
    return _request("/api/analyze", "multipart/form-data; boundary=fuzzboundary", body)


def _value(draw: Any, name: str) -> tuple[bytes, str | None, str | None]:
    if name in ("files", "file", "images"):
        content = draw(st.sampled_from([dicom_seed(), png_seed("L", 5, 4), b"", b"\x00" * 10, b"PK\x03\x04junk"]))
        filename = draw(st.sampled_from([*FILENAMES, None]))
        ctype = draw(st.sampled_from([None, "application/octet-stream", "image/png", "text/plain; charset=x", "\x00"]))
        return content, filename, ctype
    value = draw(st.sampled_from(VALUES) | st.binary(max_size=40))
    filename = draw(st.sampled_from([None, None, None, "v.txt"]))
    return value, filename, None


@st.composite
def form_bytes(draw: Any) -> tuple[bytes, str]:
    """``(request JSON, ".json")`` of a crafted multipart request (module doc)."""
    path = draw(st.sampled_from(sorted(FIELDS)))
    names = FIELDS[path] + ["other", ""]
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(names) | st.text(max_size=8))
        value, filename, ctype = _value(draw, name)
        parts.append(_part(name, value, filename, ctype))
    if draw(st.integers(0, 6)) == 0:
        parts += [_part(f"f{k}", b"x") for k in range(draw(st.sampled_from([20, 200, 2000])))]
    boundary = draw(st.sampled_from([b"fuzzboundary", b"b" * 200, b"x"]))
    framing = draw(st.sampled_from(["ok", "ok", "ok", "open", "no_boundary", "not_multipart", "urlencoded", "junk"]))
    body = _body(parts, boundary, close=framing != "open")
    ctype = "multipart/form-data; boundary=" + boundary.decode()
    if framing == "no_boundary":
        ctype = "multipart/form-data"
    elif framing == "not_multipart":
        ctype = draw(st.sampled_from(["application/json", "text/plain", "", "application/octet-stream"]))
    elif framing == "urlencoded":
        ctype, body = "application/x-www-form-urlencoded", b"message=" + draw(st.sampled_from(VALUES)) + b"&series=%ff"
    elif framing == "junk":
        body = body[: draw(st.integers(0, len(body)))] + draw(st.binary(max_size=30))
    if draw(st.integers(0, 8)) == 0:  # a part without a disposition header
        body = body.replace(b"Content-Disposition", b"Content-Dispositiom", 1)
    return _request(path, ctype, body), ".json"


@functools.cache
def _server() -> Any:
    """A real ctlens service on 127.0.0.1 in a temporary folder, for this process (stopped at exit)."""
    api_tests = Path(__file__).resolve().parent.parent / "api"
    for folder in (api_tests, api_tests.parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from live_server import service_settings, start_server

    folder = Path(tempfile.mkdtemp(prefix="ctlens-fuzz-service-"))
    os.environ.setdefault("CTLENS_SERVICE_DIR", str(folder))
    server = start_server(service_settings(folder))
    atexit.register(server.stop)
    return server


class ServiceAnswerError(AssertionError):
    """The service answered a request with a 5xx status or a body that is not JSON."""


def post_form(path: Path) -> dict[str, Any]:
    """Send the request stored in ``path`` to the service; return ``{"status": ...}`` or raise ServiceAnswerError."""
    request = json.loads(path.read_bytes())
    server = _server()
    body = base64.b64decode(request["body"])
    with server.client() as client:
        response = client.post(request["path"], content=body, headers={"Content-Type": request["content_type"]})
    status = response.status_code
    kind = response.headers.get("content-type", "")
    if status >= 500 or not (kind.startswith("application/") and "json" in kind or kind.startswith("text/event")):
        raise ServiceAnswerError(f"{request['path']} answered {status} {kind}: {response.text[:200]}")
    if "json" in kind:
        response.json()  # must parse
    return {"status": status}
