"""The service's archive routes against hostile callers and a hostile archive (a scripted loopback server).

Path parameters that try to leave the archive's URL space never reach the archive; QIDO answers of the wrong
types are dropped, not a 500; a series that is too large is refused before or while it is retrieved (413); an
archive that drips its answer ends in a 504 within the deadline. Nothing retrieved is left behind.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from live_server import free_port, service_settings, start_server

STUDY = "1.2.826.0.1.3680043.2.1125.1"
BOUNDARY = "b0undary"


class _Archive(http.server.BaseHTTPRequestHandler):
    """Answers by ``script(handler)``; records every request path in ``seen``."""

    script: Callable[[http.server.BaseHTTPRequestHandler], None]
    seen: list[str]

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append(self.path)
        try:
            type(self).script(self)
        except OSError:
            pass  # the client hung up


def reply(h: http.server.BaseHTTPRequestHandler, content_type: str, body: bytes) -> None:
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def qido_series(instances: int, uid: str = "1.2.3.4") -> bytes:
    model = {"0020000E": {"vr": "UI", "Value": [uid]}, "00080060": {"vr": "CS", "Value": ["CT"]}}
    return json.dumps([model | {"00201209": {"vr": "IS", "Value": [instances]}}]).encode()


def tiny_instances(n: int) -> bytes:
    """``n`` small CT instances of STUDY / series 1.2.3.4 as a multipart body (one SOP Instance UID for all)."""
    import io

    import pydicom
    from fake_instances import ct_slice

    out = []
    for k in range(n):
        ds = ct_slice(STUDY, "1.2.3.4", k, size=2)
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        out.append(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + buf.getvalue() + b"\r\n")
    return b"".join(out) + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def archive() -> Iterator[Callable[..., tuple[object, list[str]]]]:
    """``archive(script, **settings)``: a scripted archive and a service pointed at it; (service, seen paths)."""
    started: list = []

    def make(script, tmp, **overrides):
        seen: list[str] = []
        handler = type("Scripted", (_Archive,), {"script": staticmethod(script), "seen": seen})
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/dicom-web"
        settings = service_settings(tmp, dicomweb_url=url, dicomweb_retries=0, dicomweb_timeout=5, **overrides)
        srv = start_server(settings, port=free_port())
        started.append((srv, httpd))
        return srv, seen

    yield make
    for srv, httpd in started:
        srv.stop()
        httpd.shutdown()
        httpd.server_close()


def _is_problem(r, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"


def test_hostile_study_uids_never_reach_the_archive(archive, tmp_path) -> None:
    srv, seen = archive(lambda h: reply(h, "application/dicom+json", b"[]"), tmp_path / "svc")
    client = srv.client()
    hostile = ["..%2F..%2Fetc", "1.2.3%2F..%2F..%2Fadmin", "%2e%2e", "1.2.3%00", "1.2.3;x", "1." + "2" * 100, "1.2.3 "]
    for uid in hostile:
        _is_problem(client.get(f"/api/archive/studies/{uid}/series"), 404, 422)
        _is_problem(client.post(f"/api/archive/studies/{uid}/analyze", json={}), 404, 405, 422)
    _is_problem(client.post(f"/api/archive/studies/{STUDY}/analyze", json={"series_uid": "../1.2"}), 422)
    _is_problem(client.get("/api/archive/studies", params={"study_uid": "../../x"}), 422)
    _is_problem(client.get("/api/archive/studies", params={"accession": "A\\B"}), 422)
    assert seen == [], seen
    assert client.get(f"/api/archive/studies/{STUDY}/series").status_code == 404  # a valid UID does reach it
    assert len(seen) == 1 and seen[0].startswith(f"/dicom-web/studies/{STUDY}/series")


def test_archive_answers_of_the_wrong_types_are_dropped(archive, tmp_path) -> None:
    studies = [
        {"0020000D": "1.2.3"},
        {"0020000D": {"vr": "UI", "Value": 5}},
        {"0020000D": {"vr": "UI", "Value": [{"Alphabetic": "Doe^Jane"}]}},
        {"0020000D": {"vr": "UI", "Value": ["<script>alert(1)</script>"]}},
        {
            "0020000D": {"vr": "UI", "Value": [STUDY]},
            "00080020": {"vr": "DA", "Value": [{"x": 1}]},
            "00080061": {"vr": "CS", "Value": ["CT", 7, None, "x" * 500]},
            "00201206": {"vr": "IS", "Value": ["1e400"]},
            "00201208": {"vr": "IS", "Value": [10**30]},
        },
    ]
    series = [{"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}, "00080060": {"vr": "CS", "Value": [{"a": 1}]}}]

    def script(h) -> None:
        reply(h, "application/dicom+json", json.dumps(series if "/series" in h.path else studies).encode())

    srv, _ = archive(script, tmp_path / "svc")
    r = srv.client().get("/api/archive/studies")
    assert r.status_code == 200, r.text
    assert r.json()["studies"] == [
        {"study_uid": STUDY, "date": None, "modalities": ["CT"], "series": None, "instances": None}
    ]
    assert "Doe" not in r.text and "script" not in r.text
    r = srv.client().get(f"/api/archive/studies/{STUDY}/series")
    assert r.status_code == 200, r.text
    assert r.json()["series"] == [{"series_uid": "1.2.3.4", "modality": None, "number": None, "instances": None}]


def test_a_series_too_large_is_refused_before_or_while_it_is_retrieved(archive, tmp_path) -> None:
    srv, seen = archive(lambda h: reply(h, "application/dicom+json", qido_series(100_000)), tmp_path / "big")
    r = srv.client().post(f"/api/archive/studies/{STUDY}/analyze", json={})
    _is_problem(r, 413)
    assert "100000 instances" in r.json()["detail"]
    assert not [p for p in seen if "/series/1.2.3.4" in p], "the series was retrieved although QIDO said too large"

    parts = tiny_instances(1).rsplit(f"--{BOUNDARY}--".encode(), 1)[0]  # QIDO says 2; the archive never stops

    def lying(h) -> None:
        if "/series/1.2.3.4" not in h.path:
            reply(h, "application/dicom+json", qido_series(2))
            return
        h.send_response(200)
        h.send_header("Content-Type", f'multipart/related; type="application/dicom"; boundary={BOUNDARY}')
        h.end_headers()
        for _ in range(1_000_000):
            h.wfile.write(parts * 100)

    srv, seen = archive(lying, tmp_path / "lying", max_upload_files=20, dicomweb_deadline=10.0)
    start = time.monotonic()
    r = srv.client().post(f"/api/archive/studies/{STUDY}/analyze", json={})
    _is_problem(r, 413)
    assert "more than 20 instances" in r.json()["detail"] and time.monotonic() - start < 5
    assert not any(srv.ctx.tmp_dir.iterdir())
    assert srv.client().get("/api/studies").json()["studies"] == []


@pytest.mark.parametrize("stage", ["search", "retrieval"])
def test_a_dripping_archive_ends_in_504_within_the_deadline(archive, tmp_path, stage) -> None:
    stop = threading.Event()

    def script(h) -> None:
        if stage == "search" or "/series/1.2.3.4" in h.path:
            h.send_response(200)
            kind = "application/dicom+json" if stage == "search" else f"multipart/related; boundary={BOUNDARY}"
            h.send_header("Content-Type", kind)
            h.end_headers()
            for _ in range(100):  # one byte every 0.2 s: never silent for the 5 s timeout
                h.wfile.write(b" ")
                h.wfile.flush()
                if stop.wait(0.2):
                    return
        else:
            reply(h, "application/dicom+json", qido_series(2))

    srv, _ = archive(script, tmp_path / "svc", dicomweb_deadline=2.0)
    try:
        start = time.monotonic()
        r = srv.client().post(f"/api/archive/studies/{STUDY}/analyze", json={})
        elapsed = time.monotonic() - start
    finally:
        stop.set()
    _is_problem(r, 504)
    assert "deadline of 2 s" in r.json()["detail"]
    assert elapsed < 4.5, elapsed  # each archive call has its own deadline: QIDO (quick) then WADO
    assert not any(srv.ctx.tmp_dir.iterdir())
