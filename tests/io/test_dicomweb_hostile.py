"""The DICOMweb client against a real, hostile HTTP server on 127.0.0.1.

The server (stdlib ``http.server`` in a thread) answers each scenario, named by the first path segment of the
client's root URL, the way a broken or malicious archive would: wrong content type, truncated multipart,
a 10 GiB Content-Length, one byte a second, 401, 503 then 200, malformed JSON. Each must give a one-line
PacsError within the configured limits, leave nothing in ``dest``, and never show credentials.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from ctlens.core.errors import PacsError
from ctlens.io.dicomweb import DicomWebClient
from ctlens.io.multipart import MultipartBody, iter_parts

STUDY, SERIES = "1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2"
BOUNDARY = "hostile-boundary"
MULTIPART = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def tiny_dicom(sop_uid: str) -> bytes:
    """A small but valid CT instance (8x8 pixels) as a DICOM file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = STUDY, SERIES, "CT"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(128)
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def part(body: bytes, content_type: str = "application/dicom") -> bytes:
    return f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + body + b"\r\n"


CLOSE = f"--{BOUNDARY}--\r\n".encode()


class Hostile(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.stop = threading.Event()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def count(self, scenario: str) -> int:
        with self.lock:
            return sum(1 for _, path, _ in self.requests if path.split("/")[1] == scenario)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection; a body without length ends at close
    server: Hostile

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._dispatch()

    def _dispatch(self) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path, dict(self.headers)))
        scenario = self.path.split("/")[1]
        try:
            getattr(self, f"scenario_{scenario.replace('-', '_')}")()
        except OSError:
            pass  # the client hung up

    def _answer(self, status: int, content_type: str | None, body: bytes, length: int | None = -1) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(len(body) if length == -1 else length))
        self.end_headers()
        self.wfile.write(body)

    def scenario_wrong_type(self) -> None:
        self._answer(200, "text/html", b"<html><body>Please log in</body></html>")

    def scenario_truncated(self) -> None:  # one complete instance, then half of the next, then close
        body = part(tiny_dicom("1.2.3.4.1")) + part(tiny_dicom("1.2.3.4.2"))[:200]
        self._answer(200, MULTIPART, body, length=None)

    def scenario_huge(self) -> None:
        self._answer(200, MULTIPART, part(tiny_dicom("1.2.3.4.1")), length=10737418240)

    def scenario_drip(self) -> None:  # headers at once, then one byte a second
        self.send_response(200)
        self.send_header("Content-Type", MULTIPART)
        self.end_headers()
        self.wfile.flush()
        for _ in range(60):
            if self.server.stop.wait(1.0):
                return
            self.wfile.write(b"x")
            self.wfile.flush()

    def scenario_drip_headers(self) -> None:  # even the status line comes one byte a second
        for byte in b"HTTP/1.0 200 OK\r\nContent-Type: application/dicom+json\r\n\r\n[]":
            if self.server.stop.wait(1.0):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def scenario_stall(self) -> None:  # headers, then silence
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.end_headers()
        self.wfile.flush()
        self.server.stop.wait(30)

    def scenario_unauthorized(self) -> None:
        self._answer(401, "application/json", b'{"Message": "Unauthorized"}')

    def scenario_flaky(self) -> None:  # 503 on odd requests, the study on even ones
        if self.server.count("flaky") % 2 == 1:
            self._answer(503, "text/plain", b"busy")
        else:
            self._answer(200, MULTIPART, part(tiny_dicom("1.2.3.4.1")) + part(tiny_dicom("1.2.3.4.2")) + CLOSE)

    def scenario_unavailable(self) -> None:
        self._answer(503, "text/plain", b"down for maintenance")

    def scenario_missing(self) -> None:
        self._answer(404, "application/json", b"{}")

    def scenario_bad_json(self) -> None:
        self._answer(200, "application/dicom+json", b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]')

    def scenario_garbage(self) -> None:
        self._answer(200, MULTIPART, b"this is not a multipart body at all\r\n" * 10)

    def scenario_wrong_part(self) -> None:
        self._answer(200, MULTIPART, part(b'{"a": 1}', "application/json") + CLOSE)

    def scenario_not_dicom(self) -> None:
        self._answer(200, MULTIPART, part(tiny_dicom("1.2.3.4.1")) + part(b"plain bytes, no DICOM") + CLOSE)

    def scenario_big(self) -> None:  # no Content-Length: the limit must hold while streaming
        self._answer(200, MULTIPART, part(tiny_dicom("1.2.3.4.1")) + part(bytes(50_000)) + CLOSE, length=None)

    def scenario_echo(self) -> None:
        self._answer(200, "application/dicom+json", b"[]")

    def scenario_stow_refused(self) -> None:
        failed = {
            "00081198": {
                "vr": "SQ",
                "Value": [
                    {"00081155": {"vr": "UI", "Value": ["1.2.3.4.99"]}, "00081197": {"vr": "US", "Value": [0xA900]}}
                ],
            }
        }
        self._answer(409, "application/dicom+json", json.dumps(failed).encode())


@pytest.fixture(scope="module")
def server() -> Iterator[Hostile]:
    httpd = Hostile()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def client(server: Hostile, scenario: str, **kwargs: object) -> DicomWebClient:
    options = {"timeout": 5.0, "deadline": 10.0, "retries": 0, **kwargs}
    return DicomWebClient(f"http://127.0.0.1:{server.server_port}/{scenario}/dicom-web", **options)  # type: ignore[arg-type]


def retrieve_fails(c: DicomWebClient, dest: Path, match: str, within: float) -> PacsError:
    start = time.monotonic()
    with pytest.raises(PacsError, match=match) as info:
        c.retrieve_series(STUDY, SERIES, dest)
    assert time.monotonic() - start < within
    assert list(dest.iterdir()) == [], "a failed retrieval left files behind"
    assert "\n" not in str(info.value)
    return info.value


def test_wrong_content_type(server: Hostile, tmp_path: Path) -> None:
    error = retrieve_fails(client(server, "wrong-type"), tmp_path, "expected a multipart/related answer", 5)
    assert "'text/html'" in str(error) and f"127.0.0.1:{server.server_port}/wrong-type/dicom-web/studies" in str(error)


def test_truncated_multipart_removes_the_complete_instances_too(server: Hostile, tmp_path: Path) -> None:
    retrieve_fails(client(server, "truncated"), tmp_path, "without its closing boundary \\(truncated\\)", 5)


def test_huge_content_length_is_refused_before_reading(server: Hostile, tmp_path: Path) -> None:
    error = retrieve_fails(client(server, "huge"), tmp_path, "announces 10737418240 bytes", 3)
    assert "limit of 4294967296 bytes" in str(error)


def test_stream_over_the_byte_limit(server: Hostile, tmp_path: Path) -> None:
    retrieve_fails(client(server, "big", max_bytes=20_000), tmp_path, "larger than the limit of 20000 bytes", 5)


def test_slow_drip_is_cut_at_the_deadline(server: Hostile, tmp_path: Path) -> None:
    start = time.monotonic()
    retrieve_fails(client(server, "drip", deadline=2.0, timeout=10.0), tmp_path, "deadline of 2 s", 3.5)
    assert time.monotonic() - start > 1.5


def test_dripping_headers_are_cut_at_the_deadline(server: Hostile) -> None:
    start = time.monotonic()
    with pytest.raises(PacsError, match="deadline of 2 s"):
        client(server, "drip-headers", deadline=2.0, timeout=10.0).search_studies()
    assert time.monotonic() - start < 3.5


def test_silent_server_trips_the_read_timeout(server: Hostile) -> None:
    start = time.monotonic()
    with pytest.raises(PacsError, match="sent nothing for 1 s \\(timeout\\)"):
        client(server, "stall", timeout=1.0).search_studies()
    assert time.monotonic() - start < 2.5


def test_401_names_the_fix_and_hides_credentials(server: Hostile, tmp_path: Path) -> None:
    url = f"http://alice:pw-s3cret@127.0.0.1:{server.server_port}/unauthorized/dicom-web"
    basic = DicomWebClient(url, timeout=5, retries=0)
    error = retrieve_fails(basic, tmp_path, "refused access \\(HTTP 401\\)", 5)
    assert "check the token / credentials" in str(error)
    assert "pw-s3cret" not in str(error) and "alice" not in str(error)
    with pytest.raises(PacsError, match="HTTP 401") as info:
        client(server, "unauthorized", token="tok-s3cret").search_studies()
    assert "tok-s3cret" not in str(info.value)
    assert server.count("unauthorized") == 2, "a 4xx must not be retried"


def test_503_then_200_is_retried(server: Hostile, tmp_path: Path) -> None:
    before = server.count("flaky")
    files = client(server, "flaky", retries=2).retrieve_series(STUDY, SERIES, tmp_path / "out")
    assert sorted(f.name for f in files) == ["1.2.3.4.1.dcm", "1.2.3.4.2.dcm"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.2.3.4.1.dcm", "1.2.3.4.2.dcm"]
    assert pydicom.dcmread(files[0]).SOPInstanceUID == "1.2.3.4.1"
    assert server.count("flaky") - before == 2


def test_503_every_time_gives_up_after_the_retries(server: Hostile, tmp_path: Path) -> None:
    error = retrieve_fails(client(server, "unavailable", retries=2), tmp_path, "HTTP 503", 6)
    assert "after 3 attempts" in str(error)
    assert server.count("unavailable") == 3


def test_404_is_not_retried(server: Hostile, tmp_path: Path) -> None:
    retrieve_fails(client(server, "missing", retries=2), tmp_path, "no such study/series \\(HTTP 404\\)", 3)
    assert server.count("missing") == 1


def test_malformed_json_for_qido(server: Hostile) -> None:
    with pytest.raises(PacsError, match="not valid JSON"):
        client(server, "bad-json").search_studies(modality="CT")


def test_garbage_wrong_part_type_and_non_dicom_parts(server: Hostile, tmp_path: Path) -> None:
    retrieve_fails(client(server, "garbage"), tmp_path, "never shows its boundary", 5)
    retrieve_fails(client(server, "wrong-part"), tmp_path, "part 1 of the answer is 'application/json'", 5)
    retrieve_fails(client(server, "not-dicom"), tmp_path, "part 2 of the answer is not a DICOM instance", 5)
    created = tmp_path / "new" / "folder"
    with pytest.raises(PacsError, match="never shows its boundary"):
        client(server, "garbage").retrieve_series(STUDY, None, created)
    assert not created.exists(), "a folder the failed retrieval created was left behind"


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = DicomWebClient(f"http://bob:hunter2@127.0.0.1:{port}/dicom-web", timeout=2, retries=1)
    start = time.monotonic()
    with pytest.raises(PacsError, match="cannot connect") as info:
        c.retrieve_series(STUDY, SERIES, tmp_path)
    assert time.monotonic() - start < 3
    assert "hunter2" not in str(info.value) and "bob" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_bearer_and_basic_auth_reach_the_server(server: Hostile) -> None:
    client(server, "echo", token="tok-123").search_studies(study_uid=STUDY)
    client(server, "echo", username="carol", password="pa:ss").search_series(STUDY)
    url = f"http://dave:pw%40x@127.0.0.1:{server.server_port}/echo/dicom-web"
    DicomWebClient(url, retries=0).search_instances(STUDY, SERIES)
    seen = [(path, headers.get("Authorization")) for _, path, headers in server.requests if "/echo/" in path]
    assert seen[-3][1] == "Bearer tok-123"
    assert seen[-3][0].startswith("/echo/dicom-web/studies?") and f"StudyInstanceUID={STUDY}" in seen[-3][0]
    assert seen[-2][1] == "Basic " + base64.b64encode(b"carol:pa:ss").decode()
    assert seen[-1][1] == "Basic " + base64.b64encode(b"dave:pw@x").decode()


def test_stow_failures_name_the_refused_instances(server: Hostile) -> None:
    with pytest.raises(PacsError, match="refused 1 of 1 instance") as info:
        client(server, "stow-refused").store([pydicom.dcmread(io.BytesIO(tiny_dicom("1.2.3.4.99")))])
    assert "1.2.3.4.99 (does not match SOP class)" in str(info.value)


def test_bad_uids_never_reach_the_server(server: Hostile, tmp_path: Path) -> None:
    before = len(server.requests)
    with pytest.raises(PacsError, match="not a valid StudyInstanceUID"):
        client(server, "echo").retrieve_series("../../admin", None, tmp_path)
    with pytest.raises(PacsError, match="not a DICOM date"):
        client(server, "echo").search_studies(date="yesterday")
    assert len(server.requests) == before


def test_multipart_reader_splits_across_any_chunking(tmp_path: Path) -> None:
    bodies = [b"\r\n--not-the-boundary\r\n" + bytes(range(256)) * 40, b"", b"last\r\n"]
    body = MultipartBody(bodies, "application/dicom")
    data = b"preamble\r\n" + b"".join(body) + b"epilogue"
    for size in (1, 7, 64, 4096, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        parts = list(iter_parts(chunks, body.content_type, tmp_path, part_type="application/dicom"))
        assert [p.path.read_bytes() for p in parts] == bodies
        assert [p.size for p in parts] == [len(b) for b in bodies]
        for p in parts:
            p.path.unlink()
    assert list(tmp_path.iterdir()) == []


def test_from_settings_takes_url_and_token_from_the_environment(
    server: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTLENS_DICOMWEB_URL", f"http://127.0.0.1:{server.server_port}/echo/dicom-web")
    monkeypatch.setenv("CTLENS_DICOMWEB_TOKEN", "env-token")
    monkeypatch.setenv("CTLENS_DICOMWEB_DEADLINE", "7")
    c = DicomWebClient.from_settings()
    assert c.deadline == 7.0 and c.search_studies(accession="A1") == []
    path, headers = next((p, h) for _, p, h in reversed(server.requests) if "/echo/" in p)
    assert headers.get("Authorization") == "Bearer env-token" and "AccessionNumber=A1" in path
