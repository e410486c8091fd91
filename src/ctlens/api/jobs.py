"""Background analysis jobs whose state lives in SQLite, so they survive the worker that started them.

A big upload is queued (:func:`queue_job`) with the place of its staged files; each worker process runs a
:class:`JobRunner`: threads that claim queued jobs from the shared database (:meth:`Store.claim_job`), run the
job body (:func:`run_job`), send heartbeats while working and record the outcome. A job whose worker dies stops
getting heartbeats and is claimed again by any other worker after the lease (``CTLENS_JOB_LEASE_SECONDS``).
The staged upload lives under the shared service folder, so any worker can pick it up (and removes the dead
process's staging folder once the job has read it); a job that kills its worker ``MAX_JOB_ATTEMPTS`` times is
failed by the recovery sweep (:mod:`ctlens.api.recovery`). :func:`job_view` is what
``GET /api/jobs/{id}`` answers.

Example:
    >>> import tempfile, pathlib
    >>> from ctlens.api.store import Store
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "db.sqlite3")
    >>> job = store.add_job("key_1", "st_1", "f" * 64, {})
    >>> store.claim_job("worker-a", lease=60)["id"] == job
    True
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctlens.api.problems import public_text
from ctlens.api.processing import analyse_now
from ctlens.api.recovery import drop_abandoned
from ctlens.api.schemas import Job
from ctlens.api.store import Store
from ctlens.api.uploads import StagedUpload
from ctlens.core.errors import CTLensError, ServiceError

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

logger = logging.getLogger("ctlens.api")

JobFunction = Callable[[dict[str, Any], Callable[[float, str], None]], None]


def queue_job(ctx: ServiceContext, owner: str, study_id: str, staged: StagedUpload, series: str | None) -> str:
    """Queue the analysis of ``staged`` (its files stay until the job has read them); return the job's id."""
    params = {
        "folder": str(staged.folder),
        "kind": staged.kind,
        "input_path": str(staged.input_path),
        "nbytes": staged.nbytes,
        "n_files": staged.n_files,
        "series": series,
    }
    job_id = ctx.store.add_job(owner, study_id, staged.sha256, params)
    if ctx.runner is not None:
        ctx.runner.notify()
    return job_id


def run_job(ctx: ServiceContext, job: dict[str, Any], progress: Callable[[float, str], None]) -> None:
    """Job body: analyse the staged upload named in the job's params; a failure is recorded on the content."""
    params = json.loads(job["params"])
    staged = StagedUpload(
        folder=Path(params["folder"]),
        kind=params["kind"],
        input_path=Path(params["input_path"]),
        sha256=job["sha256"],
        nbytes=params["nbytes"],
        n_files=params["n_files"],
    )
    try:
        analyse_now(ctx, staged, series=params.get("series"), progress=progress)
    except CTLensError as exc:
        ctx.store.fail_content(job["sha256"], exc.one_line(), getattr(exc, "status", 422))
        raise
    except Exception:
        ctx.store.fail_content(job["sha256"], "internal error while analysing", 500)
        raise
    finally:  # a job taken over from a dead process: its staging folder goes once empty
        drop_abandoned(ctx, staged.folder)


def job_view(store: Store, owner: str, job_id: str) -> Job:
    """The state of ``owner``'s job; 404 when there is none (or it is another key's)."""
    job = store.job(job_id, owner=owner)
    if job is None:
        raise ServiceError(f"no job {job_id!r}", status=404)
    return Job(
        id=job["id"],
        state=job["state"],
        progress=job["progress"],
        message=job["message"],
        error=job["error"],
        study_id=job["study_id"],
        study_url=f"/api/studies/{job['study_id']}",
    )


def worker_name() -> str:
    """``host:pid:random``: unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobRunner:
    """Threads that run jobs from the store with ``run(job, progress)``; ``progress`` also heartbeats."""

    def __init__(self, store: Store, run: JobFunction, *, threads: int = 1, lease: float = 60.0, poll: float = 1.0):
        self.store = store
        self.run = run
        self.threads = max(1, threads)
        self.lease = lease
        self.poll = poll
        self.worker = worker_name()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool: list[threading.Thread] = []

    def start(self) -> None:
        """Start the job threads (daemon threads: they never keep the process alive)."""
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"ctlens-job-{i}", daemon=True)
            thread.start()
            self._pool.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the threads to stop after their current job."""
        self._stop.set()
        self._wake.set()
        for thread in self._pool:
            thread.join(timeout)

    def notify(self) -> None:
        """Wake the threads: a job was just queued."""
        self._wake.set()

    def run_one(self) -> bool:
        """Claim and run one job in this thread; False when there was none."""
        job = self.store.claim_job(self.worker, self.lease)
        if job is None:
            return False
        job_id = job["id"]
        beat_stop = threading.Event()
        state = {"progress": None, "message": None}

        def beat() -> None:
            while not beat_stop.wait(max(self.lease / 4, 0.2)):
                self.store.heartbeat(job_id, self.worker, state["progress"], state["message"])

        def progress(fraction: float, message: str) -> None:
            state.update(progress=fraction, message=message)
            self.store.heartbeat(job_id, self.worker, fraction, message)

        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        try:
            self.run(job, progress)
        except Exception as exc:  # recorded as the job's one-line error
            status = getattr(exc, "status", 500)
            # shown by GET /api/jobs/{id}: files by name only, never a server path
            reason = public_text(exc) if isinstance(exc, CTLensError) else f"{type(exc).__name__} while running the job"
            if status >= 500:
                logger.exception("job %s failed", job_id)
            self.store.finish_job(job_id, self.worker, error=reason, status=status)
        else:
            self.store.finish_job(job_id, self.worker)
        finally:
            beat_stop.set()
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_one()
            except Exception:  # a broken database must not kill the thread silently forever
                logger.exception("job runner error")
                ran = False
            if not ran:
                self._wake.wait(self.poll)
                self._wake.clear()
