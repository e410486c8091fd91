"""The DICOMweb client and ``ctlens pull`` / ``ctlens search`` against archives that attack them.

A scripted HTTP/1.1 server on 127.0.0.1 (stdlib ``http.server``) answers each scenario, named by the first path
segment of the client's root URL: compression bombs, JSON that is deep, huge or of the wrong types, parts that
are another study's or carry hostile UIDs, thousands of tiny parts, a boundary inside a body, redirects and
bulk data pointing at another server. Each must end in one PacsError line (or a safe result), within bounded
memory, leaving nothing behind and never showing or forwarding credentials.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest
from fake_instances import ct_slice
from typer.testing import CliRunner

from ctlens.cli.main import app
from ctlens.core.errors import CorruptFileError, PacsError
from ctlens.io.dicomweb import DicomWebClient

STUDY, SERIES = "1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2"
BOUNDARY = "hostile-boundary"
MULTIPART = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
CLOSE = f"--{BOUNDARY}--\r\n".encode()
Route = Callable[[BaseHTTPRequestHandler], None]


def instance(sop: str, study: str = STUDY, series: str = SERIES, size: int = 8, index: int = 0) -> bytes:
    """A small CT instance as a DICOM file (pydicom may warn about hostile UIDs; it writes them as given)."""
    ds = ct_slice(study, series, index, size=size)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def part(body: bytes, content_type: str = "application/dicom") -> bytes:
    return f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + body + b"\r\n"


def gzipped(blocks: Iterator[bytes], wbits: int = 31) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(packer.compress(block) for block in blocks) + packer.flush()


class Scripted(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def url(self, scenario: str, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.server_port}/{scenario}/dicom-web"

    def hits(self, scenario: str) -> list[tuple[str, dict[str, str]]]:
        with self.lock:
            return [(path, headers) for path, headers in self.seen if path.split("/")[1] == scenario]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        with self.server.lock:
            self.server.seen.append((self.path, dict(self.headers)))
        route = self.server.routes.get(self.path.split("/")[1])
        try:
            if route is None:
                answer(self, 404, "application/json", b"{}")
            else:
                route(self)
        except OSError:
            pass  # the client hung up


def answer(h: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes, **headers: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Connection", "close")
    for name, value in headers.items():
        h.send_header(name.replace("_", "-"), value)
    h.end_headers()
    h.wfile.write(body)


def chunked(h: BaseHTTPRequestHandler, content_type: str, chunks: Iterator[bytes], **headers: str) -> None:
    """An answer in chunked transfer encoding: no Content-Length at all."""
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Transfer-Encoding", "chunked")
    h.send_header("Connection", "close")
    for name, value in headers.items():
        h.send_header(name.replace("_", "-"), value)
    h.end_headers()
    for chunk in chunks:
        h.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="module")
def web() -> Iterator[Scripted]:
    server = Scripted()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def client(web: Scripted, scenario: str, route: Route, **options: object) -> DicomWebClient:
    web.routes[scenario] = route
    settings = {"timeout": 5.0, "deadline": 15.0, "retries": 0, **options}
    return DicomWebClient(web.url(scenario), **settings)  # type: ignore[arg-type]


def fails(call: Callable[[], object], match: str, dest: Path | None = None) -> PacsError:
    with pytest.raises(PacsError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    if dest is not None and dest.exists():
        assert sorted(p.name for p in dest.iterdir()) == [], "a failed retrieval left files behind"
    return info.value


# --- compression: httpx would inflate any Content-Encoding in one go --------------------------------------------
def test_gzip_bomb_is_inflated_in_bounded_steps_and_counted_decoded(web: Scripted, tmp_path: Path) -> None:
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    bomb = gzipped(iter([head, *(bytes(1 << 20) for _ in range(64))]))  # 64 MiB of zeros in ~64 kB
    assert len(bomb) < 100_000

    def route(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, bomb, Content_Encoding="gzip")

    c = client(web, "gzip-bomb", route, max_bytes=8 * 1024**2)
    tracemalloc.start()
    try:
        fails(lambda: c.retrieve_series(STUDY, SERIES, tmp_path), "larger than the limit of 8388608 bytes", tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"peak {peak / 2**20:.1f} MiB")
    assert peak < 16 * 1024**2, f"{peak / 2**20:.0f} MiB held at once while inflating"
    assert web.hits("gzip-bomb")[0][1].get("Accept-Encoding") == "identity"


def test_stacked_and_unknown_encodings_are_refused(web: Scripted, tmp_path: Path) -> None:
    inner = gzipped(iter([part(instance("1.2.3.4.1")), bytes(8 << 20)]))
    double = gzipped(iter([inner]))  # "gzip, gzip": each layer would multiply by up to 1000

    def stacked(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, double, Content_Encoding="gzip, gzip")

    def brotli(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, "application/dicom+json", b"\x1b\x00\x00garbage", Content_Encoding="br")

    c = client(web, "gzip-gzip", stacked, max_bytes=4 * 1024**2)
    fails(lambda: c.retrieve_series(STUDY, SERIES, tmp_path), "compressed as 'gzip, gzip', which is not", tmp_path)
    fails(lambda: client(web, "brotli", brotli).search_studies(), "compressed as 'br', which is not accepted")


def test_gzip_and_deflate_answers_still_work(web: Scripted, tmp_path: Path) -> None:
    found = [{"0020000D": {"vr": "UI", "Value": [STUDY]}}]
    text = json.dumps(found).encode()
    bodies = {"gzip": gzipped(iter([text])), "deflate": zlib.compress(text), "raw-deflate": gzipped(iter([text]), -15)}
    for name, body in bodies.items():

        def route(h: BaseHTTPRequestHandler, body: bytes = body, name: str = name) -> None:
            answer(h, 200, "application/dicom+json", body, Content_Encoding=name.replace("raw-", ""))

        assert client(web, f"enc-{name}", route).search_studies() == found, name
    two = part(instance("1.2.3.4.1")) + part(instance("1.2.3.4.2", index=1)) + CLOSE

    def series(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, gzipped(iter([two])), Content_Encoding="gzip")

    files = client(web, "enc-series", series).retrieve_series(STUDY, SERIES, tmp_path)
    assert sorted(f.name for f in files) == ["1.2.3.4.1.dcm", "1.2.3.4.2.dcm"]

    def cut(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, gzipped(iter([two]))[:-40], Content_Encoding="gzip")

    fails(lambda: client(web, "enc-cut", cut).retrieve_series(STUDY, SERIES, tmp_path / "cut"), "truncated")


# --- JSON ------------------------------------------------------------------------------------------------------
def test_deeply_nested_json_is_one_line_error(web: Scripted) -> None:
    def deep(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, "application/dicom+json", b"[" * 50_000 + b"]" * 50_000)

    def deep_sequences(h: BaseHTTPRequestHandler) -> None:  # parses as JSON, too deep for DICOM datasets
        item = "{}"
        for _ in range(230):  # about 920 levels of JSON, below json's limit
            item = '{"00081115": {"vr": "SQ", "Value": [' + item + "]}}"
        answer(h, 200, "application/dicom+json", f"[{item}]".encode())

    fails(lambda: client(web, "deep", deep).search_studies(), "not valid JSON \\(nested too deeply\\)")
    fails(lambda: client(web, "deep", deep).series_metadata(STUDY, SERIES), "nested too deeply")
    fails(lambda: client(web, "deep-sq", deep_sequences).series_metadata(STUDY, SERIES), "nested too deeply")


def test_huge_json_is_refused_at_64_mib(web: Scripted) -> None:
    def announced(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/dicom+json")
        h.send_header("Content-Length", str(200 * 1024**2))
        h.end_headers()
        h.wfile.write(b"[")

    def streamed(h: BaseHTTPRequestHandler) -> None:  # parsed, 70 MB of JSON would take gigabytes
        chunked(h, "application/dicom+json", iter([b"["] + [b" " * (1 << 20)] * 70 + [b"]"]))

    error = fails(lambda: client(web, "json-huge", announced).search_studies(), "announces 209715200 bytes")
    assert "limit of 67108864 bytes" in str(error)
    fails(lambda: client(web, "json-stream", streamed).search_studies(), "larger than the limit of 67108864 bytes")


# --- parts -----------------------------------------------------------------------------------------------------
def test_parts_of_another_study_or_series_are_refused(web: Scripted, tmp_path: Path) -> None:
    other_study = part(instance("1.2.3.4.1")) + part(instance("1.2.3.4.2", study="1.2.3.999")) + CLOSE
    other_series = part(instance("1.2.3.4.1")) + part(instance("1.2.3.4.3", series="1.2.3.998")) + CLOSE

    def study(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, other_study)

    def series(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, other_series)

    c = client(web, "other-study", study)
    error = fails(
        lambda: c.retrieve_series(STUDY, SERIES, tmp_path), "part 2 .* another study \\('1.2.3.999'\\)", tmp_path
    )
    assert "not asked for" in str(error)
    c = client(web, "other-series", series)
    fails(lambda: c.retrieve_series(STUDY, SERIES, tmp_path), "part 2 .* another series \\('1.2.3.998'\\)", tmp_path)
    files = c.retrieve_series(STUDY, None, tmp_path / "study")  # the whole study: other series are its own
    assert len(files) == 2


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI", "ignore:The value length")
def test_hostile_sop_uids_never_become_paths(web: Scripted, tmp_path: Path) -> None:
    uids = ["../../escape", "a/b", "1.2.3\x00/../x", "1." + "9" * 198, "..", "/etc/passwd"]
    body = b"".join(part(instance(uid, index=k)) for k, uid in enumerate(uids)) + CLOSE

    def route(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, body)

    dest = tmp_path / "dest" / "inner"
    files = client(web, "evil-uids", route).retrieve_series(STUDY, SERIES, dest)
    assert [f.name for f in files] == [f"instance-{k:05d}.dcm" for k in range(1, len(uids) + 1)]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [f.name for f in files]
    assert all(f.parent == dest for f in files)


def test_thousands_of_tiny_parts_stop_at_max_instances(web: Scripted, tmp_path: Path) -> None:
    template = instance("1.2.3.4.100000", size=2)
    body = b"".join(part(template.replace(b"1.2.3.4.100000", f"1.2.3.4.{100000 + k}".encode())) for k in range(1000))
    body += CLOSE

    def route(h: BaseHTTPRequestHandler) -> None:
        chunked(h, MULTIPART, iter([body[i : i + 65536] for i in range(0, len(body), 65536)]))

    c = client(web, "tiny-parts", route)
    start = time.monotonic()
    fails(lambda: c.retrieve_series(STUDY, SERIES, tmp_path, max_instances=100), "more than 100 instances", tmp_path)
    assert time.monotonic() - start < 5
    files = c.retrieve_series(STUDY, SERIES, tmp_path / "all")  # no limit asked for: all of them, one file each
    assert len(files) == len(set(files)) == 1000


def test_boundary_inside_a_body(web: Scripted, tmp_path: Path) -> None:
    one = instance("1.2.3.4.1", size=32)
    inside = len(one) - 500  # in the pixel data
    junk = one[:inside] + f"\r\n--{BOUNDARY}\r\n".encode() + one[inside:]  # the rest parses as part headers
    ends = one[:inside] + f"\r\n--{BOUNDARY}--".encode() + one[inside:]  # the body "ends" in the pixel data

    def route_junk(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, part(junk) + CLOSE)

    def route_ends(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, part(ends) + CLOSE)

    c = client(web, "bnd-junk", route_junk)
    fails(lambda: c.retrieve_series(STUDY, SERIES, tmp_path), "garbage|truncated", tmp_path)
    # Multipart framing cannot tell this cut from a complete part; the reader then refuses the short pixel data.
    (file,) = client(web, "bnd-ends", route_ends).retrieve_series(STUDY, SERIES, tmp_path / "cut")
    assert file.stat().st_size == inside
    import ctlens

    with pytest.raises(CorruptFileError, match="pixel data is truncated"):
        ctlens.load(tmp_path / "cut")


def test_chunked_answer_over_max_bytes(web: Scripted, tmp_path: Path) -> None:
    def route(h: BaseHTTPRequestHandler) -> None:
        head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        chunked(h, MULTIPART, iter([head, *([bytes(65536)] * 200)]))

    c = client(web, "chunked-big", route, max_bytes=1_000_000)
    fails(lambda: c.retrieve_series(STUDY, SERIES, tmp_path), "larger than the limit of 1000000 bytes", tmp_path)


def test_a_failed_retrieval_keeps_files_that_were_in_dest(web: Scripted, tmp_path: Path) -> None:
    mine = tmp_path / "1.2.3.4.1.dcm"
    mine.write_bytes(instance("1.2.3.4.1"))  # pulled before: the same instance
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")

    def route(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, MULTIPART, part(instance("1.2.3.4.1")) + part(instance("1.2.3.4.2", index=1))[:300])

    fails(lambda: client(web, "refetch", route).retrieve_series(STUDY, SERIES, tmp_path), "truncated")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.2.3.4.1.dcm", "notes.txt"]
    assert pydicom.dcmread(mine).SOPInstanceUID == "1.2.3.4.1"


# --- other servers: redirects and bulk data ------------------------------------------------------------------------
def test_redirects_to_another_origin_are_not_followed(web: Scripted, tmp_path: Path) -> None:
    for status in (302, 307, 308):
        target = web.url(f"collector-{status}") + f"/studies/{STUDY}"
        target = target.replace("127.0.0.1", "localhost")  # another origin (host name), same test server

        def route(h: BaseHTTPRequestHandler, target: str = target, status: int = status) -> None:
            answer(h, status, "text/plain", b"moved", Location=target)

        url = web.url(f"redirect-{status}", userinfo="alice:pw-s3cret@")
        web.routes[f"redirect-{status}"] = route
        c = DicomWebClient(url, token=None, retries=2, timeout=5)
        error = fails(
            lambda c=c: c.retrieve_series(STUDY, SERIES, tmp_path), f"redirects \\(HTTP {status}\\)", tmp_path
        )
        assert "pw-s3cret" not in str(error) and "alice" not in str(error)
        assert web.hits(f"collector-{status}") == [], "the client followed a redirect"
        assert len(web.hits(f"redirect-{status}")) == 1, "a 3xx must not be retried"
        sent = web.hits(f"redirect-{status}")[0][1]["Authorization"]
        assert sent == "Basic " + base64.b64encode(b"alice:pw-s3cret").decode()


def test_bulk_data_uris_are_never_fetched(web: Scripted) -> None:
    elsewhere = web.url("bulk-collector") + "/pixels"
    model = {
        "00080018": {"vr": "UI", "Value": ["1.2.3.4.1"]},
        "0020000E": {"vr": "UI", "Value": [SERIES]},
        "7FE00010": {"vr": "OW", "BulkDataURI": elsewhere},
        "00081115": {"vr": "SQ", "Value": [{"00420011": {"vr": "OB", "BulkDataURI": elsewhere + "/doc"}}]},
        "00282000": {"vr": "OB", "BulkDataURI": "file:///etc/passwd"},
    }

    def route(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, "application/dicom+json", json.dumps([model]).encode())

    (ds,) = client(web, "bulk", route).series_metadata(STUDY, SERIES)
    assert ds.SOPInstanceUID == "1.2.3.4.1" and "PixelData" not in ds and "ICCProfile" not in ds
    assert "EncapsulatedDocument" not in ds.ReferencedSeriesSequence[0]
    assert web.hits("bulk-collector") == []


# --- credentials -------------------------------------------------------------------------------------------------
def test_credentials_never_reach_errors_or_logs(
    web: Scripted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(h: BaseHTTPRequestHandler) -> None:
        answer(h, 401, "text/plain", b"who are you")

    web.routes["auth"] = refuse
    secrets = ["tok-SECRET-1", "pw-SECRET-2", base64.b64encode(b"bob:pw-SECRET-2").decode()]
    caplog.set_level(logging.DEBUG)
    errors = []
    for c in (
        DicomWebClient(web.url("auth"), token="tok-SECRET-1", retries=0),
        DicomWebClient(web.url("auth", "bob:pw-SECRET-2@"), retries=0),
        DicomWebClient("http://bob:pw-SECRET-2@127.0.0.1:9/dicom-web", retries=0, timeout=1),  # nothing listens
    ):
        with pytest.raises(PacsError) as info:
            c.retrieve_series(STUDY, SERIES, tmp_path / "x")
        errors.append(str(info.value))
    text = "\n".join(errors) + caplog.text
    assert "HTTP Request" in caplog.text or "401" in text  # the requests were made and logged
    assert not [s for s in secrets if s in text], text


@pytest.mark.parametrize("url", ["http://bob:pa/ss@host:8042/dicom-web", "http://u:p#w0rd@host/dw", "http://[::1/x"])
def test_unparsable_urls_fail_without_echoing_the_password(url: str, tmp_path: Path) -> None:
    with pytest.raises(PacsError, match="not a DICOMweb address") as info:
        DicomWebClient(url)
    assert "ss@" not in str(info.value) and "w0rd" not in str(info.value)
    result = CliRunner().invoke(app, ["pull", url, "--study", STUDY, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "ss@" not in result.output and "w0rd" not in result.output


def test_cli_search_shows_hostile_values_as_plain_text(web: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    studies = [
        {
            "0020000D": {"vr": "UI", "Value": [STUDY]},
            "00080050": {"vr": "SH", "Value": ["[/bold][link=http://x]\x1b[2Jclick"]},
            "00080020": {"vr": "DA", "Value": 20240101},
            "00080061": "CT",
            "00201208": {"vr": "IS", "Value": [{"a": 1}]},
        }
    ]

    def route(h: BaseHTTPRequestHandler) -> None:
        answer(h, 200, "application/dicom+json", json.dumps(studies).encode())

    web.routes["qido-evil"] = route
    monkeypatch.setenv("CTLENS_DICOMWEB_TOKEN", "tok-cli-SECRET")
    result = CliRunner().invoke(app, ["search", web.url("qido-evil")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert STUDY in result.output and "[/bold]" in result.output and "\x1b" not in result.output
    assert "tok-cli-SECRET" not in result.output

    web.routes["qido-401"] = lambda h: answer(h, 401, "text/plain", b"no")
    result = CliRunner().invoke(app, ["pull", web.url("qido-401"), "--study", STUDY, "--out", "unused"])
    assert result.exit_code == 2 and "refused access (HTTP 401)" in result.output
    assert "tok-cli-SECRET" not in result.output and result.output.strip().count("\n") == 0


def test_sending_results_on_hides_the_destination_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    from ctlens.connect.destination import send_to

    with socket.socket() as s:  # nothing listens there once it is closed
        s.bind(("127.0.0.1", 0))
        url = f"http://bob:pw-SEND-secret@127.0.0.1:{s.getsockname()[1]}/dicom-web"
    monkeypatch.setenv("CTLENS_DICOMWEB_RETRIES", "0")
    (tmp_path / "x.dcm").write_bytes(instance("1.2.3.4.1"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PacsError, match="cannot connect") as info:
        send_to([tmp_path / "x.dcm"], url)
    result = CliRunner().invoke(app, ["push", str(tmp_path), "--to", url])
    assert result.exit_code == 2 and "cannot connect" in result.output
    assert "pw-SEND-secret" not in str(info.value) + caplog.text + result.output


def test_stow_answers_of_the_wrong_types(web: Scripted) -> None:
    answers = {
        "stow-str": {"00081198": "everything failed"},
        "stow-chars": {"00081198": {"vr": "SQ", "Value": "abc"}},
        "stow-items": {"00081198": {"vr": "SQ", "Value": [7, {"00081155": {"vr": "UI", "Value": ["9" * 5000]}}]}},
    }
    ds = pydicom.dcmread(io.BytesIO(instance("1.2.3.4.1")))
    for name, body in answers.items():

        def route(h: BaseHTTPRequestHandler, body: dict = body) -> None:
            answer(h, 200, "application/dicom+json", json.dumps(body).encode())

        error = fails(lambda name=name, route=route: client(web, name, route).store([ds]), "the server refused")
        assert len(str(error)) < 600, name
