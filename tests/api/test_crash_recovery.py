"""Issue #13, crash safety: a service killed with SIGKILL mid-analysis leaves nothing behind once restarted.

The service runs as a real subprocess (``python -m ctlens.api serve``) on 127.0.0.1; a test-only delay before the
staged upload is read (``CTLENS_TEST_DELAY_BEFORE_READ_S``, nothing but a sleep) holds the analysis while the test
kills the process with ``kill -9``. The restarted service (same ``CTLENS_SERVICE_DIR``) must have removed the raw
upload and every temporary folder, must not answer "in progress" for ever, and the same upload must complete.
Sweeps of a dead process's leftovers and of jobs that kill their worker repeatedly are checked on a real SQLite
database and real folders.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import dicom_factory
import httpx
import numpy as np
import pytest
from live_server import free_port

from ctlens.api.context import ServiceContext
from ctlens.api.recovery import INTERRUPTED, sweep
from ctlens.api.store import MAX_JOB_ATTEMPTS
from ctlens.core.settings import Settings
from ctlens.core.volume import Volume


class Service:
    """``python -m ctlens.api serve`` in a subprocess with its own environment."""

    def __init__(self, folder: Path, **env: str) -> None:
        self.port = free_port()
        self.folder = folder
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CTLENS_")}
        environ.update(CTLENS_SERVICE_DIR=str(folder), CTLENS_WORKERS="1", **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctlens.api", "serve", "--port", str(self.port), "--workers", "1"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.key = None
        lines = []
        for _ in range(4):
            line = self.proc.stdout.readline()
            lines.append(line)
            if line.startswith("new API key"):
                self.key = line.split(": ", 1)[1].strip()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("the service did not start: " + "".join(lines))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _upload(tmp_path: Path) -> list[tuple]:
    truth = dicom_factory.write_ct_series(tmp_path / "series", n_slices=12, rows=48, cols=48)
    return [("files", (f"{i:03d}.dcm", p.read_bytes(), "application/dicom")) for i, p in enumerate(truth.paths)]


def _content_status(folder: Path) -> dict[str, str]:
    with sqlite3.connect(folder / "ctlens.sqlite3") as db:
        return dict(db.execute("SELECT sha256, status FROM contents").fetchall())


def _staged_files(folder: Path) -> list[Path]:
    return [p for p in (folder / "uploads").rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def _wait(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _post_in_background(url: str, key: str, files: list[tuple]) -> threading.Thread:
    def post() -> None:
        try:
            httpx.post(url + "/api/analyze", files=files, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        except httpx.HTTPError:
            pass  # the server was killed under this request

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def _leftovers(folder: Path, live_token_dirs: int = 1) -> list[str]:
    """Anything under uploads/ but the live processes' empty folders and lock files, and temp files in content/."""
    uploads = folder / "uploads"
    left = [str(p.relative_to(folder)) for p in _staged_files(folder)]
    dirs = [p for p in uploads.iterdir() if p.is_dir()]
    if len(dirs) > live_token_dirs:
        left += [str(p.relative_to(folder)) for p in dirs]
    left += [str(p.relative_to(folder)) for p in (folder / "content").rglob("*.tmp")]
    return left


def test_kill_during_in_request_analysis_then_restart(tmp_path):
    folder = tmp_path / "svc"
    files = _upload(tmp_path)
    first = Service(folder, CTLENS_TEST_DELAY_BEFORE_READ_S="60")
    key = first.key
    try:
        _post_in_background(first.url, key, files)
        _wait(lambda: _staged_files(folder) and "processing" in _content_status(folder).values(), 30, "the analysis")
        assert _staged_files(folder)  # the raw upload (DICOM headers with PHI) is on disk while it waits
    finally:
        first.kill()
    assert _staged_files(folder) and list(_content_status(folder).values()) == ["processing"]
    second = Service(folder)
    try:
        assert _leftovers(folder) == [], "the start-up sweep left raw uploads or temporary folders"
        assert list(_content_status(folder).values()) == ["failed"]
        r = httpx.post(
            second.url + "/api/analyze", files=files, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready" and r.json()["shape"] == [12, 48, 48]
        assert _leftovers(folder) == []
        assert not list((folder / "uploads").glob("*.lock.new"))
    finally:
        second.stop()


def test_kill_during_job_then_restart_finishes_the_job(tmp_path):
    folder = tmp_path / "svc"
    files = _upload(tmp_path)
    env = {"CTLENS_JOB_THRESHOLD_BYTES": "1", "CTLENS_JOB_LEASE_SECONDS": "1"}
    first = Service(folder, CTLENS_TEST_DELAY_BEFORE_READ_S="60", **env)
    key = first.key
    auth = {"Authorization": f"Bearer {key}"}
    try:
        r = httpx.post(first.url + "/api/analyze", files=files, headers=auth, timeout=60)
        assert r.status_code == 202, r.text
        job_url, study_url = r.json()["job"]["url"], r.json()["links"]["self"]
        _wait(lambda: httpx.get(first.url + job_url, headers=auth).json()["state"] == "running", 30, "the job")
    finally:
        first.kill()
    assert _staged_files(folder)  # the job's raw upload survives the crash: the job is not done
    second = Service(folder, **env)
    try:
        done = _wait(
            lambda: (j := httpx.get(second.url + job_url, headers=auth).json())["state"] in ("done", "failed") and j,
            60,
            "the job to be taken over",
        )
        assert done["state"] == "done", done
        study = httpx.get(second.url + study_url, headers=auth).json()
        assert study["status"] == "ready" and study["shape"] == [12, 48, 48]
        assert _leftovers(folder) == []
        again = httpx.post(second.url + "/api/analyze", files=files, headers=auth, timeout=60)
        assert again.status_code == 200 and again.json()["cached"]
    finally:
        second.stop()


def _dead_token(uploads: Path) -> str:
    """The token of a process that made its mark and was killed (its lock is released by the kernel)."""
    code = (
        "import sys, pathlib, time; from ctlens.api.recovery import ProcessMark; "
        "m = ProcessMark(pathlib.Path(sys.argv[1])); print(m.token, flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(uploads)], stdout=subprocess.PIPE, text=True)
    token = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return token


@pytest.fixture
def ctx(tmp_path):
    return ServiceContext(Settings(service_dir=tmp_path / "svc", job_lease_seconds=0.2))


def test_sweep_removes_what_a_dead_process_left_and_keeps_live_work(ctx):
    store = ctx.store
    dead = _dead_token(ctx.uploads_root)
    assert dead and (ctx.uploads_root / dead).is_dir()
    orphan = ctx.uploads_root / dead / "up_orphan"
    (orphan / "dicom").mkdir(parents=True)
    (orphan / "dicom" / "00000.dcm").write_bytes(b"raw upload with PHI")
    for_job = ctx.uploads_root / dead / "up_job"
    for_job.mkdir()
    (for_job / "upload.nii.gz").write_bytes(b"queued")
    store.add_job("key_1", "st_1", "b" * 64, {"folder": str(for_job)})  # queued: its files must stay
    mine = ctx.tmp_dir / "up_mine"  # this (live) process is staging it right now
    mine.mkdir()
    (mine / "0.dcm").write_bytes(b"x")
    legacy = ctx.uploads_root / "up_legacy"  # staged directly under uploads/ by an older version
    legacy.mkdir()
    (legacy / "0.dcm").write_bytes(b"x")
    store.worker = dead
    assert store.claim_content("a" * 64, 10)  # claimed by the dead process, no job
    store.worker = ctx.mark.token
    assert store.claim_content("c" * 64, 10)  # claimed by this live process
    half = ctx.content_dir("a" * 64)
    half.mkdir()
    (half / ".volume.npy.x1.tmp").mkdir()
    stray = ctx.content_root / ".deadbeef.123.456.tmp"  # an older version's killed save
    stray.mkdir()
    old = time.time() - 3600
    os.utime(stray, (old, old))
    gone = ctx.content_dir("d" * 64)  # a folder whose row was forgotten
    gone.mkdir()
    report = sweep(ctx)
    assert not orphan.exists() and not legacy.exists() and not half.exists() and not stray.exists()
    assert not gone.exists()
    assert for_job.exists() and mine.exists() and ctx.tmp_dir.exists()
    assert store.content("a" * 64)["status"] == "failed" and store.content("a" * 64)["error"] == INTERRUPTED
    assert store.content("c" * 64)["status"] == "processing"
    assert report.uploads_removed == 2 and report.contents_failed == 1 and report.temp_removed == 1
    assert sweep(ctx).total() == 0  # nothing more to do


def test_job_that_kills_its_worker_repeatedly_is_failed(ctx):
    store = ctx.store
    dead = _dead_token(ctx.uploads_root)
    staged = ctx.uploads_root / dead / "up_1"
    staged.mkdir(parents=True)
    (staged / "upload.nii.gz").write_bytes(b"crashes the worker")
    sha = "e" * 64
    store.worker = dead
    assert store.claim_content(sha, 10)
    job_id = store.add_job("key_1", "st_1", sha, {"folder": str(staged)})
    for attempt in range(MAX_JOB_ATTEMPTS):
        worker = f"doomed-{attempt}"
        job = _wait(lambda w=worker: store.claim_job(w, lease=0.2), 5, "the job to be claimable again")
        assert job["id"] == job_id and job["attempts"] == attempt + 1
        sweep(ctx)  # a job with attempts left keeps its files and its content
        assert staged.exists() and store.content(sha)["status"] == "processing"
    time.sleep(0.3)  # the last worker's lease runs out
    assert store.claim_job("another", lease=0.2) is None  # no attempt left: nobody would ever end it
    report = sweep(ctx)
    assert report.jobs_failed == 1
    assert store.job(job_id)["state"] == "failed" and store.content(sha)["status"] == "failed"
    assert not staged.exists()
    assert store.claim_content(sha, 10)  # the same bytes can be tried again


def test_delete_removes_rows_files_and_raw_upload_and_checkpoints(ctx):
    from ctlens.api.artifacts import write_artifacts
    from ctlens.api.studies import delete_study

    store = ctx.store
    sha = "f" * 64
    assert store.claim_content(sha, 10)
    study = store.study_for("key_1", sha)
    staged = ctx.tmp_dir / "up_queued"
    staged.mkdir()
    (staged / "0.dcm").write_bytes(b"raw")
    store.add_job("key_1", study["id"], sha, {"folder": str(staged)})
    write_artifacts(ctx.content_dir(sha), Volume(np.zeros((2, 4, 4), np.int16)), {"marker": "x" * 50}, None, None)
    store.add_message(study["id"], "key_1", "user", "a question")
    delete_study(ctx, "key_1", study["id"])
    assert not staged.exists() and not ctx.content_dir(sha).exists()
    assert store.content(sha) is None and store.job_for_content(sha) is None
    assert store.messages(study["id"], "key_1") == []
    wal = Path(str(store.path) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert b"a question" not in store.path.read_bytes()  # secure_delete: the deleted row is overwritten
    assert json.loads(json.dumps(store.audit_log("key_1")))[0]["action"] == "delete"
