"""Crash recovery of the service folder: what a killed process left behind is found and removed.

Each service process stages uploads in its own folder ``uploads/<token>/`` and holds an exclusive ``flock`` on
``uploads/<token>.lock`` for as long as it lives (:class:`ProcessMark`); the kernel drops the lock when the
process dies, even by ``kill -9``, so :func:`is_alive` tells a live process's folder from a dead one's without
guessing from ages. A content row the process claimed records the same token (``contents.worker``).

:func:`sweep` runs at start-up and then every few minutes (:class:`Sweeper`, started by the app's lifespan):

* jobs that killed their worker ``MAX_JOB_ATTEMPTS`` times are marked failed, their contents too
  (:meth:`~ctlens.api.store.Store.fail_exhausted_jobs`);
* staged uploads (raw files, which may carry PHI) of dead processes are removed unless a queued or running job
  still needs them (another worker takes such a job over and deletes the files once read);
* ``processing`` contents whose process is dead and that no job will finish are marked failed (the same bytes
  uploaded again are analysed again) and their half-written folders removed;
* content folders without a usable row (failed, forgotten) and the temporary files of killed writers
  (``.*.tmp``) are removed.

Example:
    >>> import tempfile, pathlib
    >>> uploads = pathlib.Path(tempfile.mkdtemp())
    >>> mark = ProcessMark(uploads)
    >>> is_alive(uploads, mark.token), is_alive(uploads, "w-gone")
    (True, False)
    >>> mark.close(); is_alive(uploads, mark.token)
    False
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ctlens.io.files import remove_path

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

logger = logging.getLogger("ctlens.api")

TOKEN = re.compile(r"^w[0-9a-f]{16}$")
INTERRUPTED = "the analysis was interrupted (the service stopped); upload the study again"
"""Error recorded on a content whose analysis died with its process."""


class ProcessMark:
    """This process's staging folder ``uploads/<token>/`` and the lock on ``uploads/<token>.lock`` that marks it live.

    The lock file is made under a temporary name, locked, then renamed into place, so a sweep never sees an
    unlocked lock file of a live process; the folder is made after the lock.
    """

    def __init__(self, uploads: Path) -> None:
        import fcntl

        uploads.mkdir(parents=True, exist_ok=True)
        self.token = f"w{uuid.uuid4().hex[:16]}"
        self.lock_path = uploads / f"{self.token}.lock"
        pending = uploads / f".{self.token}.lock.new"
        self._fd: int | None = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._fd, str(os.getpid()).encode())
        os.replace(pending, self.lock_path)
        self.folder = uploads / self.token
        self.folder.mkdir(exist_ok=True)

    _shared: dict[tuple[str, int], ProcessMark] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def for_folder(cls, uploads: Path) -> ProcessMark:
        """The mark of this process in ``uploads``: made once, shared by every service context of the process.

        Example:
            >>> import tempfile, pathlib
            >>> uploads = pathlib.Path(tempfile.mkdtemp())
            >>> ProcessMark.for_folder(uploads) is ProcessMark.for_folder(uploads)
            True
        """
        key = (str(uploads.resolve()), os.getpid())
        with cls._shared_lock:
            mark = cls._shared.get(key)
            if mark is None or mark._fd is None:
                mark = cls._shared[key] = cls(uploads)
            return mark

    def close(self) -> None:
        """Release the lock (the process is done); the folder goes now when empty, else with the next sweep.

        Staged files of queued jobs stay for the worker that takes the job over.
        """
        if self._fd is None:
            return
        try:
            self.folder.rmdir()
            self.lock_path.unlink(missing_ok=True)
        except OSError:
            pass  # not empty: a sweep decides
        os.close(self._fd)
        self._fd = None


def is_alive(uploads: Path, token: str) -> bool:
    """Whether the process with this token still holds its lock (is running).

    Example:
        >>> import tempfile, pathlib
        >>> is_alive(pathlib.Path(tempfile.mkdtemp()), "w0123456789abcdef")
        False
    """
    import fcntl

    try:
        fd = os.open(uploads / f"{token}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops a lock we got: the holder is gone
    return False


def drop_abandoned(ctx: ServiceContext, staged: Path) -> None:
    """After a job read ``staged``: remove its parent staging folder when a dead process left it and it is empty.

    Example:
        >>> import tempfile
        >>> from ctlens.api.context import ServiceContext
        >>> from ctlens.core.settings import Settings
        >>> ctx = ServiceContext(Settings(service_dir=tempfile.mkdtemp()))
        >>> dead = ctx.uploads_root / "w0123456789abcdef"; dead.mkdir()
        >>> drop_abandoned(ctx, dead / "up_1"); dead.exists()
        False
    """
    parent = staged.parent
    name = parent.name
    if parent.parent != ctx.uploads_root or not TOKEN.match(name) or name == ctx.mark.token:
        return
    if is_alive(ctx.uploads_root, name):
        return
    try:
        parent.rmdir()
    except OSError:
        return  # not empty (another job's files) or gone
    (ctx.uploads_root / f"{name}.lock").unlink(missing_ok=True)


@dataclass
class SweepReport:
    """What one :func:`sweep` removed or failed (counts)."""

    uploads_removed: int = 0
    contents_failed: int = 0
    jobs_failed: int = 0
    folders_removed: int = 0
    temp_removed: int = 0

    def total(self) -> int:
        """Everything done, summed (0: the folder was clean)."""
        return self.uploads_removed + self.contents_failed + self.jobs_failed + self.folders_removed + self.temp_removed


def _job_folders(jobs: list[dict]) -> set[Path]:
    folders = set()
    for job in jobs:
        try:
            folder = json.loads(job["params"] or "{}").get("folder")
        except ValueError:
            continue
        if folder:
            folders.add(Path(folder).resolve())
    return folders


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > seconds
    except OSError:
        return False


def _sweep_uploads(ctx: ServiceContext, keep: set[Path], report: SweepReport) -> None:
    uploads = ctx.uploads_root
    own = ctx.mark.token
    for entry in sorted(uploads.iterdir()):
        name = entry.name
        if name.endswith(".lock") or name.endswith(".lock.new"):
            token = name.lstrip(".").split(".", 1)[0]
            gone = not (uploads / token).exists()
            if token != own and gone and not is_alive(uploads, token) and _older_than(entry, 1.0):
                entry.unlink(missing_ok=True)
            continue
        if TOKEN.match(name) and entry.is_dir() and not entry.is_symlink():
            if name == own or is_alive(uploads, name):
                continue
            left = 0
            for staged in entry.iterdir():
                if staged.resolve() in keep:
                    left += 1
                    continue
                remove_path(staged)
                report.uploads_removed += 1
            if not left:
                remove_path(entry)
                (uploads / f"{name}.lock").unlink(missing_ok=True)
            continue
        if entry.resolve() not in keep:  # staged directly under uploads/ by an older version: nobody owns it
            remove_path(entry)
            report.uploads_removed += 1


def _owner_alive(ctx: ServiceContext, worker: str | None) -> bool:
    if not worker:
        return False
    return worker == ctx.mark.token or (bool(TOKEN.match(worker)) and is_alive(ctx.uploads_root, worker))


def _sweep_contents(ctx: ServiceContext, active_shas: set[str], report: SweepReport, grace: float) -> None:
    store = ctx.store
    for row in store.processing_contents():
        sha = row["sha256"]
        if sha in active_shas or _owner_alive(ctx, row["worker"]):
            continue
        if not row["worker"] and time.time() - float(row["updated"]) < grace:
            continue  # claimed by a process that records no token (an older version): wait for the lease
        store.fail_content(sha, INTERRUPTED, 503)
        ctx.forget_folder(sha)
        report.contents_failed += 1
    for entry in sorted(ctx.content_root.iterdir()):
        name = entry.name
        if name.startswith("."):  # a temporary folder or file of a killed writer (older versions wrote here)
            if name.endswith(".tmp") and _older_than(entry, grace):
                remove_path(entry)
                report.temp_removed += 1
            continue
        row = store.content(name)
        if row is not None and row["status"] == "processing":  # being written by a live process
            continue
        if row is None or ctx.cached_result(name) is None:  # forgotten, failed or broken: nothing may use it
            ctx.forget_folder(name)
            report.folders_removed += 1
            continue
        for leftover in entry.glob(".*.tmp"):  # atomic_output temporaries of a killed export or save
            if _older_than(leftover, grace):
                remove_path(leftover)
                report.temp_removed += 1


def sweep(ctx: ServiceContext, *, grace: float | None = None) -> SweepReport:
    """Remove what dead processes left in ``ctx``'s service folder and fail what they left unfinished.

    ``grace`` (default: the job lease) is how old a temporary file of an unknown writer must be to be removed.
    Safe to run while the service works: nothing of a live process or of a job that will still run is touched.

    Example:
        >>> import tempfile
        >>> from ctlens.api.context import ServiceContext
        >>> from ctlens.core.settings import Settings
        >>> sweep(ServiceContext(Settings(service_dir=tempfile.mkdtemp()))).total()
        0
    """
    grace = ctx.settings.job_lease_seconds if grace is None else grace
    report = SweepReport()
    exhausted = ctx.store.fail_exhausted_jobs(ctx.settings.job_lease_seconds)
    report.jobs_failed = len(exhausted)
    for job in exhausted:
        logger.warning("job %s failed: it stopped its worker too often", job["id"])
    active = ctx.store.active_jobs()
    _sweep_uploads(ctx, _job_folders(active), report)
    _sweep_contents(ctx, {j["sha256"] for j in active}, report, grace)
    if report.total():
        logger.info("recovery sweep: %s", report)
    return report


class Sweeper:
    """A daemon thread that runs :func:`sweep` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, ctx: ServiceContext, interval: float) -> None:
        self.ctx = ctx
        self.interval = max(1.0, interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the periodic sweeps (the first one after ``interval``: run :func:`sweep` yourself at start-up)."""
        self._thread = threading.Thread(target=self._loop, name="ctlens-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current sweep."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep(self.ctx)
            except Exception:  # a sweep must never take the service down
                logger.exception("recovery sweep failed")
