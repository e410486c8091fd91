"""The listener's spool folder: received instances on disk, complete or not at all, within a byte budget.

Layout: ``<spool>/<study>/<series>/<sop>.dcm``, each part a hash of the UID (UIDs come from the network and are
never used as path parts). Each instance is written to a hidden temporary name in its series folder, fsynced,
then renamed into place, so a dropped association or a killed process never leaves a half-written ``.dcm``;
temporary files left by a crash are removed when the spool is opened. The spool refuses an instance that would
take it past ``max_bytes`` (the listener answers C-STORE status 0xA700, out of resources).

The spool also tracks when each study last received an instance: :meth:`Spool.quiet_studies` names the
studies that have been quiet for N seconds (studies found on disk at start count from their newest file, so
a study received before a crash is processed after the restart). A study is :meth:`~Spool.claim`\\ ed while
it is processed and :meth:`~Spool.release`\\ d afterwards, removed from disk unless instances arrived meanwhile.
One spool folder belongs to one process at a time (an exclusive lock file guards it).

Example:
    >>> import tempfile
    >>> spool = Spool(Path(tempfile.mkdtemp()), max_bytes=10_000)
    >>> path = spool.store(b"DICM-bytes", study_uid="1.2.3", series_uid="1.2.3.4", sop_uid="1.2.3.4.5")
    >>> path.relative_to(spool.folder).parts[0] == study_key("1.2.3"), spool.total_bytes
    (True, 10)
    >>> spool.quiet_studies(0.0) == [study_key("1.2.3")]
    True
    >>> spool.close()
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ctlens.core.errors import PacsError
from ctlens.io.files import fsync_dir

__all__ = ["INSTANCE_SUFFIX", "LOCK_NAME", "TEMP_SUFFIX", "Spool", "SpooledStudy", "study_key", "uid_key"]

log = logging.getLogger(__name__)

INSTANCE_SUFFIX = ".dcm"
TEMP_SUFFIX = ".part"
LOCK_NAME = ".ctlens-spool.lock"
KEY_LENGTH = 24
"""Hex characters of a UID's SHA-256 used as its folder / file name (96 bits: collisions are not a concern)."""


def uid_key(uid: str) -> str:
    """A safe, fixed-length path part for a UID (hex of its SHA-256).

    Example:
        >>> uid_key("1.2.3"), len(uid_key("../../etc/passwd"))
        ('c47f5b18b8a430e698b9fe15', 24)
    """
    return hashlib.sha256(str(uid).strip().encode("utf-8", "surrogateescape")).hexdigest()[:KEY_LENGTH]


def study_key(study_uid: str) -> str:
    """The spool (and results) folder name of a study.

    Example:
        >>> study_key("1.2.3") == uid_key("1.2.3")
        True
    """
    return uid_key(study_uid)


def _is_key(name: str) -> bool:
    return len(name) == KEY_LENGTH and all(ch in "0123456789abcdef" for ch in name)


@dataclass(frozen=True)
class SpooledStudy:
    """A claimed study: its key (folder name), folder, instance count and bytes when claimed."""

    key: str
    folder: Path
    instances: int
    bytes: int
    arrivals: int
    """The study's arrival counter at the claim (release removes the study only if it has not changed)."""


@dataclass
class _State:
    last_arrival: float
    arrivals: int = 0
    instances: int = 0
    bytes: int = 0
    in_flight: int = 0
    pending: bool = True
    claimed: bool = False


class Spool:
    """Received instances under ``folder`` (created if needed), at most ``max_bytes`` in all.

    Thread-safe: the listener stores from one thread per association and claims from its worker.
    """

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int, *, clock=time.monotonic) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self._clock = clock
        self._lock = threading.Lock()
        self._studies: dict[str, _State] = {}
        self._total = 0
        self._reserved = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PacsError(f"cannot create the spool folder ({exc.strerror})", path=self.folder) from None
        self._lock_fd = self._acquire_lock()
        self._scan()

    # -- opening ------------------------------------------------------------------------------------------------
    def _acquire_lock(self) -> int | None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover (not POSIX: no lock)
            return None
        try:
            fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PacsError(
                f"cannot open the spool folder's lock file ({exc.strerror or exc})",
                path=self.folder,
                hint="choose another --spool folder or make it writable",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise PacsError(
                "the spool folder is in use by another process",
                path=self.folder,
                hint="stop the other `ctlens listen` or choose another --spool folder",
            ) from None
        return fd

    def _scan(self) -> None:
        """Remove temporary files left by a crash; count the bytes held; note the studies found."""
        now_wall, now = time.time(), self._clock()
        removed = 0
        for dirpath, dirnames, filenames in os.walk(self.folder, topdown=False):
            here = Path(dirpath)
            for name in filenames:
                path = here / name
                if name.endswith(TEMP_SUFFIX):
                    path.unlink(missing_ok=True)
                    removed += 1
                    continue
                if here == self.folder and name == LOCK_NAME:
                    continue
                try:
                    st = path.lstat()
                except OSError:
                    continue
                self._total += st.st_size
                rel = path.relative_to(self.folder).parts
                if len(rel) == 3 and _is_key(rel[0]) and name.endswith(INSTANCE_SUFFIX):
                    age = max(0.0, now_wall - st.st_mtime)
                    state = self._studies.setdefault(rel[0], _State(last_arrival=now - age))
                    state.last_arrival = max(state.last_arrival, now - age)
                    state.instances += 1
                    state.bytes += st.st_size
            if here != self.folder and not dirnames and not filenames:
                try:
                    here.rmdir()  # an empty series / study folder
                except OSError:
                    pass
        if removed:
            log.info("spool %s: removed %d temporary file(s) left by an interrupted transfer", self.folder, removed)

    def close(self) -> None:
        """Release the folder's lock (the files stay)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- storing -----------------------------------------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        """Bytes held now (complete instances and anything else in the folder)."""
        with self._lock:
            return self._total

    def path_for(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where the instance with these UIDs is (or would be) stored."""
        return self.folder / study_key(study_uid) / uid_key(series_uid) / (uid_key(sop_uid) + INSTANCE_SUFFIX)

    def store(self, data: bytes, *, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Write one instance (``data``: a DICOM file's bytes) atomically; return its path.

        Raises :class:`PacsError` when the spool has no room for it (or the disk refuses it); then nothing is
        written.
        """
        if not (str(study_uid).strip() and str(series_uid).strip() and str(sop_uid).strip()):
            raise ValueError("an instance needs a Study, Series and SOP Instance UID")
        size = len(data)
        key = study_key(study_uid)
        dest = self.path_for(study_uid, series_uid, sop_uid)
        with self._lock:
            if self._total + self._reserved + size > self.max_bytes:
                raise PacsError(
                    f"spool full: {self._total + self._reserved} of {self.max_bytes} bytes used, "
                    f"an instance of {size} bytes refused",
                    path=self.folder,
                    hint="free space or raise listen_max_spool_bytes",
                )
            self._reserved += size
            state = self._studies.setdefault(key, _State(last_arrival=self._clock(), pending=False))
            state.in_flight += 1
        tmp: Path | None = None
        try:
            tmp = self._write_temp(dest, data)
            with self._lock:
                old = dest.stat().st_size if dest.exists() else None
                os.replace(tmp, dest)
                tmp = None
                self._commit(state, size, old)
            fsync_dir(dest.parent)
        except OSError as exc:
            raise PacsError(f"cannot write to the spool ({exc.strerror or exc})", path=self.folder) from None
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            with self._lock:
                self._reserved -= size
                state.in_flight -= 1
                if state.instances == 0 and state.in_flight == 0 and not state.claimed:
                    self._studies.pop(key, None)
        return dest

    def _commit(self, state: _State, size: int, replaced: int | None) -> None:
        """Count a new instance (lock held); ``replaced``: the size of the file it replaced, if any."""
        if replaced is not None:
            self._total -= replaced
            state.bytes -= replaced
            state.instances -= 1
        self._total += size
        state.bytes += size
        state.instances += 1
        state.arrivals += 1
        state.last_arrival = self._clock()
        state.pending = True

    def _write_temp(self, dest: Path, data: bytes) -> Path:
        """``data`` in a hidden temporary file next to ``dest``, fsynced; nothing left behind on failure."""
        series_dir = dest.parent
        created = [p for p in (series_dir.parent, series_dir) if not p.is_dir()]
        series_dir.mkdir(parents=True, exist_ok=True)
        for folder in created:
            fsync_dir(folder.parent)
        fd, tmp_name = tempfile.mkstemp(prefix="." + dest.stem + ".", suffix=TEMP_SUFFIX, dir=series_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    # -- studies -----------------------------------------------------------------------------------------------
    def quiet_studies(self, seconds: float) -> list[str]:
        """Keys of the studies with instances not yet processed and none received for ``seconds``, oldest first."""
        now = self._clock()
        with self._lock:
            ready = [
                (state.last_arrival, key)
                for key, state in self._studies.items()
                if state.pending
                and not state.claimed
                and state.in_flight == 0
                and state.instances > 0
                and now - state.last_arrival >= seconds
            ]
        return [key for _, key in sorted(ready)]

    def claim(self, key: str) -> SpooledStudy | None:
        """Mark a study as being processed; None if it is unknown, empty or already claimed."""
        with self._lock:
            state = self._studies.get(key)
            if state is None or state.claimed or state.instances == 0:
                return None
            state.claimed, state.pending = True, False
            return SpooledStudy(key, self.folder / key, state.instances, state.bytes, state.arrivals)

    def release(self, study: SpooledStudy, *, remove: bool) -> bool:
        """End the claim; with ``remove``, delete the study from the spool unless instances arrived since the
        claim (then it stays pending and is processed again once quiet). Returns True if it was removed."""
        with self._lock:
            state = self._studies.get(study.key)
            if state is None:
                return False
            state.claimed = False
            if not remove or state.arrivals != study.arrivals or state.in_flight:
                return False
            shutil.rmtree(self.folder / study.key, ignore_errors=True)
            left = sum(p.stat().st_size for p in (self.folder / study.key).rglob("*") if p.is_file())
            self._total -= state.bytes - left
            del self._studies[study.key]
        fsync_dir(self.folder)
        return True

    def studies(self) -> dict[str, int]:
        """Instances held per study key (a snapshot).

        Example:
            >>> import tempfile
            >>> with Spool(Path(tempfile.mkdtemp()), max_bytes=100) as spool:
            ...     _ = spool.store(b"x", study_uid="1", series_uid="2", sop_uid="3")
            ...     list(spool.studies().values())
            [1]
        """
        with self._lock:
            return {key: state.instances for key, state in self._studies.items() if state.instances}
