"""Background analysis jobs whose state lives in SQLite, so they survive the worker that started them.

Each worker process runs a :class:`JobRunner`: threads that claim queued jobs from the shared database
(:meth:`Store.claim_job`), send heartbeats while working and record the outcome. A job whose worker dies stops
getting heartbeats and is claimed again by any other worker after the lease (``CTLENS_JOB_LEASE_SECONDS``).
The staged upload lives under the shared service folder, so any worker can pick it up.

Example:
    >>> import tempfile, pathlib
    >>> from ctlens.api.store import Store
    >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "db.sqlite3")
    >>> job = store.add_job("key_1", "st_1", "f" * 64, {})
    >>> store.claim_job("worker-a", lease=60)["id"] == job
    True
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from ctlens.api.store import Store

logger = logging.getLogger("ctlens.api")

JobFunction = Callable[[dict[str, Any], Callable[[float, str], None]], None]


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
            reason = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__} while running the job"
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
