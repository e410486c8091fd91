"""The service pointed at a real Orthanc over DICOMweb: list, analyse like an upload, owners, send SEG + SR back.

Orthanc is seeded over its own REST API (``POST /instances``), so these tests need nothing from ctlens to put
data into the archive. Failures of the archive come from real loopback servers (refused, stalled, garbage).
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pydicom
import pytest
from live_server import free_port, service_settings, start_server

from shared_data import data_dir

B40F = ("lung_pet_ct_dx", "Lung_Dx-A0002", "series_B40f_8mm")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync", "--no-first-run"]
ARCHIVE_ROUTES = [
    ("GET", "/api/archive"),
    ("GET", "/api/archive/studies"),
    ("GET", "/api/archive/studies/1.2.3/series"),
    ("POST", "/api/archive/studies/1.2.3/analyze"),
    ("GET", "/api/studies/st_x/archive"),
    ("POST", "/api/studies/st_x/archive"),
]


def _b40f_files() -> list[Path]:
    folder = data_dir().joinpath(*B40F)
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    return sorted(p for p in folder.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def seeded(orthanc):
    """The B40f series in Orthanc (each file's bytes to ``POST /instances``); its first header, for the checks."""
    files = _b40f_files()
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        for path in files:
            client.post("/instances", content=path.read_bytes()).raise_for_status()
    return {"files": files, "header": pydicom.dcmread(files[0], stop_before_pixels=True)}


@pytest.fixture(scope="module")
def archive_server(orthanc, tmp_path_factory):
    srv = start_server(service_settings(tmp_path_factory.mktemp("svc-archive"), dicomweb_url=orthanc.dicomweb))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def analysed(archive_server, seeded):
    """The B40f study analysed from the archive by the server's key (once per module)."""
    uid = str(seeded["header"].StudyInstanceUID)
    r = archive_server.client().post(f"/api/archive/studies/{uid}/analyze", json={})
    assert r.status_code == 200, r.text
    return r.json()


def _orthanc_modalities(orthanc, study_uid: str) -> dict[str, list[str]]:
    """Orthanc's series of the study: modality -> SOP Instance UIDs (from Orthanc's own REST API)."""
    (study,) = [
        s for s in orthanc.rest("/studies?expand").json() if s["MainDicomTags"]["StudyInstanceUID"] == study_uid
    ]
    out: dict[str, list[str]] = {}
    for series in orthanc.rest(f"/studies/{study['ID']}/series").json():
        instances = orthanc.rest(f"/series/{series['ID']}/instances").json()
        uids = [i["MainDicomTags"]["SOPInstanceUID"] for i in instances]
        out.setdefault(series["MainDicomTags"]["Modality"], []).extend(uids)
    return out


def test_archive_routes_need_a_key(archive_server):
    for client in (archive_server.client(key=None), archive_server.client(key="ctl_not-a-real-key")):
        for method, path in ARCHIVE_ROUTES:
            r = client.request(method, path)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.shared_data
def test_archive_lists_the_study_without_patient_data(archive_server, seeded):
    header = seeded["header"]
    client = archive_server.client()
    assert client.get("/api/archive").json() == {"configured": True}
    r = client.get("/api/archive/studies")
    assert r.status_code == 200, r.text
    (study,) = [s for s in r.json()["studies"] if s["study_uid"] == header.StudyInstanceUID]
    assert study["date"] == "2007-04-25" and study["modalities"] == ["CT"]
    assert study["series"] == 1 and study["instances"] == len(seeded["files"])
    phi = [str(header.PatientName), str(header.PatientID), str(header.StudyDescription), "Thorax"]
    assert not [v for v in phi if v and v in r.text], r.text
    assert set(study) == {"study_uid", "date", "modalities", "series", "instances"}

    assert [s["study_uid"] for s in client.get("/api/archive/studies", params={"modality": "CT"}).json()["studies"]]
    assert client.get("/api/archive/studies", params={"modality": "MR"}).json()["studies"] == []
    by_date = client.get("/api/archive/studies", params={"date": "20070101-20071231"}).json()["studies"]
    assert [s["study_uid"] for s in by_date] == [header.StudyInstanceUID]
    assert client.get("/api/archive/studies", params={"date": "2007-04-25"}).status_code == 422

    series = client.get(f"/api/archive/studies/{header.StudyInstanceUID}/series")
    assert series.status_code == 200, series.text
    assert series.json()["series"] == [
        {"series_uid": header.SeriesInstanceUID, "modality": "CT", "number": int(header.SeriesNumber), "instances": 30}
    ]
    assert "B40f" not in series.text and "Thorax" not in series.text  # descriptions are free text: left out
    missing = client.get("/api/archive/studies/1.2.3.4.5/series")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


@pytest.mark.shared_data
def test_analyse_from_archive_matches_upload_and_is_cached(archive_server, server, seeded, analysed):
    study = analysed
    assert study["status"] == "ready" and study["kind"] == "dicom" and not study["cached"]
    assert study["shape"] == [30, 512, 512] and study["series"][0]["kernel"] == "B40f"
    assert not any(archive_server.ctx.tmp_dir.iterdir())  # the retrieved files are gone
    stored = json.dumps(archive_server.ctx.store.content(study["sha256"])["result"])
    assert str(seeded["header"].PatientName) not in stored  # de-identified like an upload

    # The same files uploaded to a service without an archive give the same findings.
    body = [("files", (f"{i}.dcm", p.read_bytes(), "application/dicom")) for i, p in enumerate(seeded["files"])]
    upload = server.client().post("/api/analyze", files=body)
    assert upload.status_code == 200, upload.text
    reference = upload.json()
    assert study["analysis"] == reference["analysis"] and study["shape"] == reference["shape"]
    assert study["spacing"] == pytest.approx(reference["spacing"])
    if reference["findings"] is not None:
        mine, theirs = study["findings"], reference["findings"]
        assert mine["measurements"] == theirs["measurements"]
        keys = ("kind", "bbox", "slice_range", "side")
        assert [{k: c[k] for k in keys} for c in mine["candidates"]] == [
            {k: c[k] for k in keys} for c in theirs["candidates"]
        ]
        assert [c["diameter_mm"] for c in mine["candidates"]] == pytest.approx(
            [c["diameter_mm"] for c in theirs["candidates"]]
        )

    # Orthanc sends the stored bytes, so the content key is the upload's and the cache is shared with uploads.
    assert study["sha256"] == reference["sha256"]
    client = archive_server.client()
    same = client.post("/api/analyze", files=body)
    assert same.status_code == 200 and same.json()["cached"] and same.json()["id"] == study["id"]
    uid = str(seeded["header"].StudyInstanceUID)
    again = client.post(f"/api/archive/studies/{uid}/analyze")  # no body: the default series
    assert again.status_code == 200 and again.json()["cached"] and again.json()["id"] == study["id"]
    link = client.get(f"/api/studies/{study['id']}/archive").json()
    assert link == {
        "study_id": study["id"],
        "from_archive": True,
        "study_uid": uid,
        "series_uid": str(seeded["header"].SeriesInstanceUID),
    }
    wrong = client.post(f"/api/archive/studies/{uid}/analyze", json={"series_uid": "1.2.3.4"})
    assert wrong.status_code == 404 and "no series" in wrong.json()["detail"]
    assert client.post(f"/api/archive/studies/{uid}/analyze", json={"series_uid": "x"}).status_code == 422
    assert not any(archive_server.ctx.tmp_dir.iterdir())


@pytest.mark.shared_data
def test_another_key_can_neither_see_nor_send(archive_server, analysed):
    other = archive_server.client(key=archive_server.ctx.create_key("other"))
    sid = analysed["id"]
    assert other.get(f"/api/studies/{sid}").status_code == 404
    assert other.get(f"/api/studies/{sid}/archive").status_code == 404
    r = other.post(f"/api/studies/{sid}/archive")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert sid not in [s["id"] for s in other.get("/api/studies").json()["studies"]]


@pytest.mark.shared_data
def test_send_results_stores_seg_and_sr_in_orthanc(archive_server, orthanc, seeded, analysed):
    pytest.importorskip("highdicom")
    client = archive_server.client()
    uid = str(seeded["header"].StudyInstanceUID)
    before = _orthanc_modalities(orthanc, uid)  # the page test may have sent results already
    r = client.post(f"/api/studies/{analysed['id']}/archive", json={})
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["study_uid"] == uid and sent["series_uid"] == str(seeded["header"].SeriesInstanceUID)
    assert {o["modality"] for o in sent["stored"]} >= {"SEG", "SR"}
    in_orthanc = _orthanc_modalities(orthanc, uid)
    assert {"CT", "SEG", "SR"} <= set(in_orthanc), in_orthanc
    for obj in sent["stored"]:
        assert obj["sop_instance_uid"] in in_orthanc[obj["modality"]]
        assert obj["sop_instance_uid"] not in before.get(obj["modality"], [])
    assert len(in_orthanc["SEG"]) == len(before.get("SEG", [])) + 1
    assert not any(archive_server.ctx.tmp_dir.iterdir())
    audit = [(e["action"], e["detail"]) for e in client.get("/api/audit").json()["entries"]]
    assert any(action == "archive" and detail.startswith("send:") for action, detail in audit)

    # With results in the study, the default series to analyse is still the CT (a cache hit).
    again = client.post(f"/api/archive/studies/{uid}/analyze")
    assert again.status_code == 200 and again.json()["cached"] and again.json()["id"] == analysed["id"]


@pytest.mark.shared_data
def test_uploaded_study_cannot_be_sent(archive_server, seeded):
    body = [("files", (f"{i}.dcm", p.read_bytes())) for i, p in enumerate(seeded["files"][:4])]
    client = archive_server.client()
    uploaded = client.post("/api/analyze", files=body)
    assert uploaded.status_code == 200, uploaded.text
    sid = uploaded.json()["id"]
    assert client.get(f"/api/studies/{sid}/archive").json()["from_archive"] is False
    r = client.post(f"/api/studies/{sid}/archive")
    assert r.status_code == 409 and "only archive studies" in r.json()["detail"]
    assert client.post("/api/studies/st_nope/archive").status_code == 404


@pytest.mark.shared_data
def test_large_archive_series_runs_as_a_job(orthanc, seeded, tmp_path):
    srv = start_server(service_settings(tmp_path / "svc", dicomweb_url=orthanc.dicomweb, job_threshold_bytes=1000))
    try:
        client = srv.client()
        uid = str(seeded["header"].StudyInstanceUID)
        r = client.post(f"/api/archive/studies/{uid}/analyze", json={})
        assert r.status_code == 202, r.text
        job_url = r.json()["job"]["url"]
        deadline = time.time() + 120
        while time.time() < deadline:
            job = client.get(job_url).json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert job["state"] == "done", job
        study = client.get(job["study_url"]).json()
        assert study["status"] == "ready" and study["shape"] == [30, 512, 512]
        assert client.get(f"/api/studies/{study['id']}/archive").json()["from_archive"] is True
        assert not any(srv.ctx.tmp_dir.iterdir())  # the job removed the retrieved files
    finally:
        srv.stop()


def test_no_archive_configured_is_a_clear_problem(server):
    client = server.client()
    assert client.get("/api/archive").json() == {"configured": False}
    for method, path in [
        ("GET", "/api/archive/studies"),
        ("GET", "/api/archive/studies/1.2.3/series"),
        ("POST", "/api/archive/studies/1.2.3/analyze"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert "no archive is configured" in r.json()["detail"] and "CTLENS_DICOMWEB_URL" in r.json()["detail"]


# --- archive failures: real loopback servers that refuse, stall or send garbage -----------------------------------
class _Hostile(http.server.BaseHTTPRequestHandler):
    mode = "garbage"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.mode == "stall":
            time.sleep(3)
            return
        if self.path.split("?")[0].endswith("/series"):  # QIDO: one CT series
            body = json.dumps(
                [
                    {
                        "0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
                        "00080060": {"vr": "CS", "Value": ["CT"]},
                        "00201209": {"vr": "IS", "Value": [1]},
                    }
                ]
            ).encode()
            self._answer(200, "application/dicom+json", body)
            return
        if self.mode == "500":
            self._answer(500, "text/plain", b"internal error at /var/lib/archive/db")
            return
        boundary = "b0undary"  # WADO-RS: one part that is not DICOM
        body = (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + b"this is not a DICOM file" * 40
            + f"\r\n--{boundary}--\r\n".encode()
        )
        self._answer(200, f'multipart/related; type="application/dicom"; boundary={boundary}', body)

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _hostile_archive(mode: str) -> http.server.ThreadingHTTPServer:
    handler = type(f"Hostile_{mode}", (_Hostile,), {"mode": mode})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


SECRETS = ("pw-hunter2", "tok-sekret-123", "archiveuser", "/dicom-web", "/var/lib/archive")


@pytest.mark.parametrize(
    ("mode", "route", "status"),
    [
        ("refused", "/api/archive/studies", 502),
        ("stall", "/api/archive/studies", 504),
        ("500", "analyze", 502),
        ("garbage", "analyze", 502),
    ],
)
def test_archive_failures_are_one_line_problems(tmp_path, mode, route, status):
    hostile = None
    if mode == "refused":
        with socket.socket() as s:  # nothing listens on this port once the socket is closed
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    else:
        hostile = _hostile_archive(mode)
        port = hostile.server_address[1]
    settings = service_settings(
        tmp_path / "svc",
        dicomweb_url=f"http://archiveuser:pw-hunter2@127.0.0.1:{port}/dicom-web",
        dicomweb_token="tok-sekret-123",
        dicomweb_timeout=0.5,
        dicomweb_retries=0,
    )
    srv = start_server(settings, port=free_port())
    try:
        client = srv.client()
        if route == "analyze":
            r = client.post("/api/archive/studies/1.2.3/analyze", json={})
        else:
            r = client.get(route)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        detail = r.json()["detail"]
        assert detail.startswith(f"archive 127.0.0.1:{port}: ") and "\n" not in detail
        leaked = [s for s in (*SECRETS, str(tmp_path), str(srv.ctx.root)) if s in r.text]
        assert not leaked, (leaked, r.text)
        assert not any(srv.ctx.tmp_dir.iterdir())  # nothing retrieved is left behind
        assert srv.client().get("/api/studies").json()["studies"] == []
    finally:
        srv.stop()
        if hostile is not None:
            hostile.shutdown()
            hostile.server_close()


# --- the web page (headless Chromium, as in test_browser.py) ------------------------------------------------------
@pytest.mark.shared_data
def test_page_lists_analyses_and_sends_back(server, orthanc, seeded, tmp_path):
    """Archive panel only with an archive; Analyse opens the study; Send shows the stored SEG and SR."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    uid = str(seeded["header"].StudyInstanceUID)
    before = _orthanc_modalities(orthanc, uid)
    srv = start_server(service_settings(tmp_path / "svc", dicomweb_url=orthanc.dicomweb, job_threshold_bytes=1000))
    try:  # the page follows the job of a large series, as for uploads
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(server.base_url + "/")  # no archive: no panel
            page.fill("#key", server.key)
            page.click("#login-btn")
            page.wait_for_selector("#app:not(.hidden)")
            page.wait_for_load_state("networkidle")
            assert page.locator("#archive-panel").is_hidden()
            page.click("#logout")

            page.goto(srv.base_url + "/")
            page.fill("#key", srv.key)
            page.click("#login-btn")
            page.wait_for_selector("#archive-panel:not(.hidden)")
            page.wait_for_selector("#archive-studies li")
            row = page.inner_text("#archive-studies li")
            assert "2007-04-25" in row and "CT" in row and str(seeded["header"].PatientName) not in row
            page.click("#archive-studies li .archive-analyse")
            page.wait_for_function("Number(document.getElementById('viewer').dataset.loaded) >= 1", timeout=60_000)
            page.wait_for_selector("#archive-send-card:not(.hidden)")
            assert page.locator("#studies li").count() == 1
            page.click("#archive-send")
            page.wait_for_selector("#archive-sent[data-state=done]", timeout=60_000)
            stored = page.inner_text("#archive-sent")
            assert "SEG" in stored and "SR" in stored, stored
            page.screenshot(path=str(os.environ.get("CTLENS_SHOT") or tmp_path / "archive.png"))
            assert not errors, errors
            browser.close()
        after = _orthanc_modalities(orthanc, uid)
        assert len(after["SEG"]) == len(before.get("SEG", [])) + 1 and len(after["SR"]) == len(before.get("SR", [])) + 1
    finally:
        srv.stop()
