"""Safe unpacking of zip archives: no path escapes, no links, no zip bombs.

A zip bomb is refused before anything is written when its headers give it away (too many members, a member or
the whole archive expanding beyond the ratio or size budget of :mod:`ctlens.io.decompress_budget`; small members
get no exemption), and while copying when the headers lie: every piece written is counted against the member's
declared size and the archive's budget, so at most one piece beyond the budget ever reaches the disk.

Example:
    >>> import io, zipfile, tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "a.zip", "w") as z:
    ...     z.writestr("series/1.dcm", b"x")
    >>> [p.name for p in safe_extract_zip(tmp / "a.zip", tmp / "out")]
    ['1.dcm']
"""

from __future__ import annotations

import lzma
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ctlens.core.errors import CorruptFileError, UnsafeArchiveError
from ctlens.core.settings import get_settings
from ctlens.io.decompress_budget import Budget, BudgetExceeded

_COPY_CHUNK = 1 << 20
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    ValueError,
)
"""What reading a damaged member raises: bad deflate (zlib), bzip2 (OSError) or LZMA (LZMAError, no OSError) data,
an unknown compression method, a bad CRC, encryption."""
MEMBER_SLACK = 4096
"""Bytes a member may hold beyond ``ratio x compressed size`` (a few-byte file cannot be compressed at all)."""


def _member_target(zip_path: Path, info: zipfile.ZipInfo, dest: Path) -> Path:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if not [p for p in parts if p not in ("", ".", "/")]:  # "" or "." names the folder itself
        raise UnsafeArchiveError(f"member '{info.filename}' has no file name", path=zip_path)
    if name.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
        raise UnsafeArchiveError(
            f"member '{info.filename}' points outside the archive folder (absolute path or '..')",
            path=zip_path,
            hint="repack the archive with relative paths",
        )
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"member '{info.filename}' is a symbolic link", path=zip_path)
    return dest.joinpath(*parts)


def check_zip(zip_path: Path, *, max_members: int | None = None, budget: Budget | None = None) -> list[zipfile.ZipInfo]:
    """Check every member of a zip before anything is written; return the file members.

    Raises :class:`UnsafeArchiveError` for path traversal, links, more members than ``CTLENS_MAX_ARCHIVE_MEMBERS``
    (or ``max_members``, when smaller), and for a member or the whole archive that expands beyond ``budget``
    (default :meth:`Budget.from_settings <ctlens.io.decompress_budget.Budget.from_settings>`): a zip bomb.

    Example:
        >>> import zipfile, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "bomb.zip"
        >>> with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        ...     for i in range(3):
        ...         z.writestr(f"{i}.dcm", bytes(1 << 20))
        >>> check_zip(path, budget=Budget(1 << 30, 100))
        Traceback (most recent call last):
        ...
        ctlens.io.decompress_budget.BudgetExceeded: ...bomb.zip: member '0.dcm' expands beyond 100x ...
    """
    settings = get_settings()
    budget = budget or Budget.from_settings(settings)
    limit = min(settings.max_archive_members, max_members or settings.max_archive_members)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:  # e.g. 'zip file version'
        raise CorruptFileError(f"not a readable zip archive ({exc})", path=zip_path) from exc
    if len(infos) > limit:
        raise UnsafeArchiveError(f"{len(infos)} members, more than the limit of {limit}", path=zip_path)
    total = 0
    files = []
    for info in infos:
        _member_target(zip_path, info, Path("."))
        if info.is_dir():
            continue
        total += info.file_size
        if info.file_size > budget.max_ratio * info.compress_size + MEMBER_SLACK:
            raise BudgetExceeded(
                f"member '{info.filename}' expands beyond {budget.max_ratio:.0f}x "
                f"({info.compress_size} -> {info.file_size} bytes): refusing a probable zip bomb",
                path=zip_path,
                hint="set CTLENS_MAX_ARCHIVE_RATIO if this archive is trusted",
            )
        files.append(info)
    budget.check(total, zip_path.stat().st_size, zip_path)
    return files


def safe_extract_zip(
    zip_path: str | Path, dest: str | Path, *, max_members: int | None = None, budget: Budget | None = None
) -> list[Path]:
    """Extract a zip into ``dest`` after :func:`check_zip`; return the extracted file paths.

    Sizes are enforced again while copying, since headers can lie; anything refused removes ``dest``.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    budget = budget or Budget.from_settings()
    members = check_zip(zip_path, max_members=max_members, budget=budget)
    compressed = zip_path.stat().st_size
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    total = 0
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in members:
                target = _member_target(zip_path, info, dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with archive.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(_COPY_CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if written > info.file_size:
                            raise UnsafeArchiveError(
                                f"member '{info.filename}' is larger than its header says", path=zip_path
                            )
                        budget.check(total, compressed, zip_path)
                        dst.write(chunk)
                out.append(target)
    except _MEMBER_ERRORS as exc:
        shutil.rmtree(dest, ignore_errors=True)  # damaged deflate data, an unknown compression method, ...
        raise CorruptFileError(f"cannot extract the zip archive ({exc})", path=zip_path) from exc
    except UnsafeArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return out
