"""Safe unpacking of zip archives: no path escapes, no links, no zip bombs.

Example:
    >>> import io, zipfile, tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "a.zip", "w") as z:
    ...     z.writestr("series/1.dcm", b"x")
    >>> [p.name for p in safe_extract_zip(tmp / "a.zip", tmp / "out")]
    ['1.dcm']
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ctlens.core.errors import CorruptFileError, UnsafeArchiveError
from ctlens.core.settings import get_settings

_COPY_CHUNK = 1 << 20


def _member_target(zip_path: Path, info: zipfile.ZipInfo, dest: Path) -> Path:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
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


def check_zip(zip_path: Path) -> list[zipfile.ZipInfo]:
    """Check every member of a zip before anything is written; return the file members.

    Raises :class:`UnsafeArchiveError` for path traversal, links, too many members,
    a total size over ``CTLENS_MAX_ARCHIVE_BYTES`` or a member whose compression
    ratio exceeds ``CTLENS_MAX_ARCHIVE_RATIO`` (a zip bomb).
    """
    settings = get_settings()
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CorruptFileError(f"not a readable zip archive ({exc})", path=zip_path) from exc
    if len(infos) > settings.max_archive_members:
        raise UnsafeArchiveError(
            f"{len(infos)} members, more than the limit of {settings.max_archive_members}", path=zip_path
        )
    total = 0
    files = []
    for info in infos:
        _member_target(zip_path, info, Path("."))
        if info.is_dir():
            continue
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1 << 20 and ratio > settings.max_archive_ratio:
            raise UnsafeArchiveError(
                f"member '{info.filename}' expands {ratio:.0f}x (limit {settings.max_archive_ratio:.0f}x): "
                "refusing a probable zip bomb",
                path=zip_path,
                hint="set CTLENS_MAX_ARCHIVE_RATIO if this archive is trusted",
            )
        files.append(info)
    if total > settings.max_archive_bytes:
        raise UnsafeArchiveError(
            f"expands to {total / 1e9:.2f} GB, more than the limit of {settings.max_archive_bytes / 1e9:.2f} GB",
            path=zip_path,
            hint="set CTLENS_MAX_ARCHIVE_BYTES if this archive is trusted",
        )
    return files


def safe_extract_zip(zip_path: str | Path, dest: str | Path) -> list[Path]:
    """Extract a zip into ``dest`` after :func:`check_zip`; return the extracted file paths.

    Sizes are enforced again while copying, since headers can lie.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    members = check_zip(zip_path)
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in members:
                target = _member_target(zip_path, info, dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with archive.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(_COPY_CHUNK):
                        written += len(chunk)
                        if written > info.file_size:
                            raise UnsafeArchiveError(
                                f"member '{info.filename}' is larger than its header says", path=zip_path
                            )
                        dst.write(chunk)
                out.append(target)
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise CorruptFileError(f"cannot extract the zip archive ({exc})", path=zip_path) from exc
    except UnsafeArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return out
