"""Job state in SQLite survives a worker process killed mid-job; ``ctlens serve`` prints how to log in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
from live_server import free_port

from ctlens.api.jobs import JobRunner
from ctlens.api.store import Store

CLAIM_AND_HANG = textwrap.dedent(
    """
    import sys, time
    from ctlens.api.store import Store
    job = Store(sys.argv[1]).claim_job("doomed-worker", lease=0.5)
    print(job["id"], flush=True)
    time.sleep(600)
    """
)


def test_job_claimed_by_a_killed_process_is_finished_by_another(tmp_path):
    db = tmp_path / "ctlens.sqlite3"
    store = Store(db)
    job_id = store.add_job("key_1", "st_1", "b" * 64, {})
    worker = subprocess.Popen([sys.executable, "-c", CLAIM_AND_HANG, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == job_id
        assert store.job(job_id)["worker"] == "doomed-worker"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    ran = []
    runner = JobRunner(store, lambda job, progress: ran.append(job["id"]), lease=0.5, poll=0.05)
    deadline = time.time() + 10
    while not ran and time.time() < deadline:
        runner.run_one() or time.sleep(0.1)
    assert ran == [job_id]
    assert store.job(job_id)["state"] == "done"


def test_ctlens_serve_prints_a_key_that_logs_in(tmp_path):
    port = free_port()
    env = dict(os.environ, CTLENS_SERVICE_DIR=str(tmp_path / "svc"))
    ctlens = os.path.join(os.path.dirname(sys.executable), "ctlens")
    proc = subprocess.Popen(
        [ctlens, "serve", "--port", str(port), "--create-key"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        key = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("new API key"))
        assert any("log in" in line for line in lines) and f"http://localhost:{port}/" in lines[0]
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert page.status_code == 200 and "ctlens" in page.text
        me = httpx.get(f"http://127.0.0.1:{port}/api/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/me").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)


def test_a_failed_jobs_error_names_files_without_server_paths(tmp_path):
    from ctlens.core.errors import CorruptFileError

    store = Store(tmp_path / "ctlens.sqlite3")
    job_id = store.add_job("key_1", "st_1", "c" * 64, {})
    secret_dir = str(tmp_path / "uploads" / "tok123")

    def fail(job, progress):
        raise CorruptFileError(f"cannot read {secret_dir}/up_1/scan.raw", path=f"{secret_dir}/up_1/scan.nrrd")

    assert JobRunner(store, fail, lease=5, poll=0.05).run_one()
    job = store.job(job_id)
    assert job["state"] == "failed"
    assert job["error"] == "scan.nrrd: cannot read scan.raw"
    assert str(tmp_path) not in job["error"]
