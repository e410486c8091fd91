"""Log messages of ``ctlens`` commands as plain ``ctlens: warning: ...`` lines, repeated ones grouped with a count.

Per-file messages (a logging call ``"%s: ..."`` whose first argument is the path of a file, not a folder, as
the DICOM reader and de-identification write them) are held and printed once per distinct message when the command ends:
``ctlens: warning: FOLDER: <message> (x30 files)``. Other messages print at once; if the same one comes again,
the repeats are counted and reported at the end instead of printed. Python ``warnings`` are routed through the
same handler while a command runs (:func:`capture`).

Example:
    >>> import io, logging
    >>> out = io.StringIO()
    >>> handler = GroupedLogHandler(lambda: out)
    >>> log = logging.getLogger("ctlens.doctest")
    >>> log.addHandler(handler); log.propagate = False
    >>> for name in ("a/1.dcm", "a/2.dcm", "a/3.dcm"):
    ...     log.warning("%s: no BurnedInAnnotation", name)
    >>> handler.flush_groups()
    >>> print(out.getvalue().strip())
    ctlens: warning: a: no BurnedInAnnotation (x3 files)
    >>> log.removeHandler(handler)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TextIO

__all__ = ["GroupedLogHandler", "capture", "flush_grouped", "install", "quiet_network_log", "uninstall"]

_LEVEL_WORDS = {logging.DEBUG: "debug: ", logging.INFO: "", logging.WARNING: "warning: ", logging.ERROR: "error: "}
_WARNING_PREFIX = re.compile(r"^.*?:\d+: (?=\w+: )")  # "file.py:12: UserWarning: text" -> "UserWarning: text"


@dataclass
class _Group:
    level: int
    message: str
    files: list[str] = field(default_factory=list)


def _per_file(record: logging.LogRecord) -> tuple[str | None, str]:
    """``(path, message without the path)`` of a ``"%s: ..."`` record about one file, else ``(None, "")``."""
    args = record.args
    if not isinstance(record.msg, str) or not record.msg.startswith("%s: ") or not isinstance(args, tuple) or not args:
        return None, ""
    first = args[0]
    if not (isinstance(first, PurePath) or (isinstance(first, str) and ("/" in first or os.sep in first))):
        return None, ""
    if os.path.isdir(first):  # a message about a whole folder (the series read from it) comes once: print it
        return None, ""
    try:
        rest = record.msg[4:] % args[1:]
    except (TypeError, ValueError):
        return None, ""
    return str(first), " ".join(rest.split())


def _level_word(level: int) -> str:
    return _LEVEL_WORDS.get(level, "error: " if level > logging.ERROR else "")


def _text(record: logging.LogRecord) -> str:
    """The record's message on one line (a Python warning keeps ``Category: text``, not its source line)."""
    message = record.getMessage()
    if record.name == "py.warnings":
        message = _WARNING_PREFIX.sub("", message.strip().splitlines()[0] if message.strip() else message)
    return " ".join(message.split())


def _folder_of(files: list[str]) -> str:
    parents = [os.path.dirname(f) for f in files]
    try:
        return os.path.commonpath(parents) if all(parents) else ""
    except ValueError:  # absolute and relative paths mixed
        return ""


class GroupedLogHandler(logging.Handler):
    """Writes records as ``ctlens: [warning: ]<message>``; groups per-file and repeated ones (module doc)."""

    def __init__(self, stream: Callable[[], TextIO] = lambda: sys.stderr, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._stream = stream
        self._groups: dict[tuple[int, str], _Group] = {}
        self._repeats: dict[tuple[int, str], int] = {}

    def _write(self, level: int, text: str) -> None:
        stream = self._stream()
        stream.write(f"ctlens: {_level_word(level)}{text}\n")
        stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            path, rest = _per_file(record)
            if path is not None:
                group = self._groups.setdefault((record.levelno, rest), _Group(record.levelno, rest))
                group.files.append(path)
                return
            text = _text(record)
            key = (record.levelno, text)
            if key in self._repeats:
                self._repeats[key] += 1
                return
            self._repeats[key] = 0
            self._write(record.levelno, text)
        except Exception:  # noqa: BLE001 - logging must never take the command down
            self.handleError(record)

    def flush_groups(self) -> None:
        """Print the held per-file messages (one line each, with a count) and the repeat counts; forget them."""
        groups, self._groups = self._groups, {}
        for group in groups.values():
            if len(group.files) == 1:
                self._write(group.level, f"{group.files[0]}: {group.message}")
                continue
            folder = _folder_of(group.files)
            where = f"{folder}: " if folder else ""
            self._write(group.level, f"{where}{group.message} (x{len(group.files)} files)")
        repeats, self._repeats = self._repeats, {}
        for (level, text), n in repeats.items():
            if n:
                self._write(level, f"{text} (repeated {n} more time{'s' if n > 1 else ''})")


_active: GroupedLogHandler | None = None


def install(verbose: bool = False) -> GroupedLogHandler:
    """Make a fresh :class:`GroupedLogHandler` the root logger's ``ctlens`` handler (INFO with ``verbose``).

    Example:
        >>> handler = install()
        >>> handler in logging.getLogger().handlers
        True
        >>> uninstall()
        >>> handler in logging.getLogger().handlers
        False
    """
    global _active
    uninstall()
    root = logging.getLogger()
    _active = GroupedLogHandler(level=logging.INFO if verbose else logging.WARNING)
    root.addHandler(_active)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("ctlens").setLevel(logging.INFO if verbose else logging.NOTSET)
    return _active


def uninstall() -> None:
    """Remove the handler :func:`install` added (what it still holds is dropped: flush first)."""
    global _active
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, GroupedLogHandler)]:
        root.removeHandler(old)
    logging.getLogger("ctlens").setLevel(logging.NOTSET)
    _active = None


def flush_grouped() -> None:
    """Print what the installed handler holds (no-op when none is installed).

    Example:
        >>> flush_grouped()
    """
    if _active is not None:
        _active.flush_groups()


@contextlib.contextmanager
def capture() -> Iterator[None]:
    """While a command runs: Python ``warnings`` go to logging (so through the handler); at the end the held lines
    are printed and the handler is removed.

    Example:
        >>> with capture():
        ...     pass
    """
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        flush_grouped()
        uninstall()


def quiet_network_log() -> None:
    """Silence pynetdicom's per-association ERROR lines unless ``-v``: ``listen`` and ``push`` report failures in
    one line of their own.

    Example:
        >>> quiet_network_log()
    """
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
