"""File helpers for the whole project: the one atomic write, the one file lock, readability checks, file versions.

:func:`atomic_output` is how every file is written (write a temporary, fsync, rename, fsync the folder);
:func:`atomic_leftovers` finds what a killed writer left; :func:`exclusive_lock` keeps a second process out of
a job (a cache build, an export) for as long as the first one lives.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "b.txt"
    >>> with atomic_output(out) as tmp:
    ...     _ = tmp.write_text("ok")
    >>> out.read_text()
    'ok'
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ctlens.core.errors import CorruptFileError, CTLensError, InputNotFoundError

MAX_DEFLATE_RATIO = 1100
"""Largest size ratio accepted for a gzip-compressed image: deflate cannot exceed about 1032:1 (zlib docs)."""


def file_versions(folder: str | os.PathLike[str], names: tuple[str, ...]) -> tuple[tuple[int, int], ...] | None:
    """``(size, mtime_ns)`` of each named file in ``folder``, or None if one is missing or unreadable.

    A cheap version key for caches of things loaded from files (a checkpoint rewritten in place gets a new key)
    that needs two ``stat`` calls and no read.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.json").write_text("{}")
        >>> file_versions(folder, ("a.json",))[0][0], file_versions(folder, ("a.json", "b.bin"))
        (2, None)
    """
    try:
        stats = [(Path(folder) / name).stat() for name in names]
    except OSError:
        return None
    return tuple((st.st_size, st.st_mtime_ns) for st in stats)


def fsync_dir(folder: Path) -> None:
    """Flush the folder's entries (names created, renamed or removed in it) to the disk.

    POSIX only: where a folder cannot be opened or fsynced (Windows, some network file systems) this
    does nothing, as there the rename itself is the strongest guarantee on offer.

    Example:
        >>> import tempfile
        >>> fsync_dir(Path(tempfile.mkdtemp()))
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # EINVAL / EBADF: this file system does not sync folders
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` to; move the result into place only if the block succeeds.

    The temporary path has the same file name in a hidden folder next to ``path`` (so writers that pick
    the format, or name companion files such as ``.raw``, from the name behave the same). On success every
    file written there is moved into ``path``'s folder with :func:`os.replace`, companions first and the
    named file last; on any error the temporary folder is removed and nothing is left behind. A missing
    destination folder raises :class:`~ctlens.core.errors.InputNotFoundError`; other OS errors become
    :class:`~ctlens.core.errors.CTLensError`.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_output(out) as tmp:
        ...     _ = tmp.write_text("done")
        >>> out.read_text(), sorted(p.name for p in out.parent.iterdir())
        ('done', ['a.txt'])
    """
    dest = Path(path)
    parent = dest.parent
    if not parent.is_dir():
        raise InputNotFoundError(
            f"cannot write: the folder {str(parent)!r} does not exist",
            path=dest,
            hint="create the folder first or choose another output path",
        )
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise CTLensError(f"cannot write: {exc.strerror or exc}", path=dest, hint="check folder permissions") from exc
    try:
        tmp_path = tmp_dir / dest.name
        yield tmp_path
        if not tmp_path.is_file():
            raise CTLensError("writer produced no file", path=dest)
        written = sorted(p for p in tmp_dir.iterdir() if p.name != dest.name) + [tmp_path]
        for item in written:
            with open(item, "rb") as fh:
                os.fsync(fh.fileno())
        for item in written:
            os.replace(item, parent / item.name)
        fsync_dir(parent)  # the new names are on disk too, not only the bytes
    except OSError as exc:
        raise CTLensError(
            f"cannot write: {exc.strerror or exc}", path=dest, hint="check free disk space and folder permissions"
        ) from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def atomic_leftovers(folder: str | Path, name: str | None = None) -> list[Path]:
    """Temporary folders :func:`atomic_output` left in ``folder`` (for the file ``name``, or for any name).

    They are named ``.<name>.<random>.tmp``; a process killed while writing leaves one. Remove them only while
    holding the lock that keeps other writers of the same files out (:func:`exclusive_lock`).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()); (folder / ".a.h5.k3y_9.tmp").mkdir()
        >>> _ = (folder / ".a.h5").write_text("")  # not a leftover
        >>> [p.name for p in atomic_leftovers(folder, "a.h5")], [p.name for p in atomic_leftovers(folder)]
        (['.a.h5.k3y_9.tmp'], ['.a.h5.k3y_9.tmp'])
    """
    stem = re.escape(name) if name is not None else ".+"
    pattern = re.compile(rf"^\.{stem}\.[A-Za-z0-9_]+\.tmp$")
    where = Path(folder)
    candidates = where.glob(f".{glob.escape(name)}.*.tmp" if name is not None else ".*.tmp")
    return sorted(p for p in candidates if pattern.match(p.name))


def remove_path(path: Path) -> None:
    """Remove the file, link or folder tree ``path``; a missing one is fine.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()) / "x"; d.mkdir(); remove_path(d); remove_path(d); d.exists()
        False
    """
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive_lock(path: str | Path, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` for the block, or raise ``busy(holder)`` at once.

    POSIX ``flock``: the OS releases it when the holding process ends, even when it is killed, so a lock file
    left by a dead process never blocks. The file holds the holder's process id (``holder`` is that id, or
    ``'unknown'``) and is removed on exit; the inode check after locking handles a file the previous holder
    removed between our open and our lock.

    Example:
        >>> import tempfile
        >>> lock = Path(tempfile.mkdtemp()) / ".job.lock"
        >>> with exclusive_lock(lock, lambda pid: RuntimeError(f"busy ({pid})")):
        ...     lock.exists()
        True
        >>> lock.exists()
        False
    """
    import fcntl

    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise busy(holder or "unknown") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def check_readable(path: Path, kind: str) -> None:
    """Raise a CTLensError naming ``path`` when it is missing, not a file, or empty."""
    if not path.exists():
        raise InputNotFoundError("file not found", path=path, hint="check the path")
    if not path.is_file():
        raise InputNotFoundError(f"not a file (a {kind} file was expected)", path=path, hint="pass the file itself")
    if path.stat().st_size == 0:
        raise CorruptFileError("empty file (0 bytes)", path=path, hint=f"re-export or re-download the {kind} file")
