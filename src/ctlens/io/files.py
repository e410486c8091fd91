"""File helpers shared by the readers and writers: atomic output, readability checks and file versions.

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
import os
import shutil
import tempfile
from collections.abc import Iterator
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


def check_readable(path: Path, kind: str) -> None:
    """Raise a CTLensError naming ``path`` when it is missing, not a file, or empty."""
    if not path.exists():
        raise InputNotFoundError("file not found", path=path, hint="check the path")
    if not path.is_file():
        raise InputNotFoundError(f"not a file (a {kind} file was expected)", path=path, hint="pass the file itself")
    if path.stat().st_size == 0:
        raise CorruptFileError("empty file (0 bytes)", path=path, hint=f"re-export or re-download the {kind} file")
