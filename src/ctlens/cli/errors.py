"""Every ``ctlens`` error is one line on stderr, ``ctlens: error: <message>``, and an exit status; never a traceback.

:func:`one_line_errors` turns a CTLensError (or an unreadable path) inside a command into that line and exit 2;
the root command group (:mod:`ctlens.cli.group`) prints usage errors (unknown option, missing argument, bad
value) with the same :func:`fail`, also with exit 2.

Example:
    >>> from ctlens.core.errors import CorruptFileError
    >>> @one_line_errors
    ... def broken():
    ...     raise CorruptFileError("truncated", path="x.dcm")
    >>> try:
    ...     broken()
    ... except SystemExit as exit:
    ...     exit.code
    2
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from ctlens.core.errors import CTLensError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INPUT_ERROR = 2
EXIT_USAGE_ERROR = 2


def error_line(message: str) -> str:
    """``ctlens: error: <message>`` on one line (line breaks and runs of spaces become one space).

    Example:
        >>> error_line("No such option: --x\\n  Did you mean --y?")
        'ctlens: error: No such option: --x Did you mean --y?'
    """
    return "ctlens: error: " + " ".join(str(message).split())


def fail(message: str, code: int = EXIT_INPUT_ERROR) -> NoReturn:
    """Print :func:`error_line` on stderr (after the warnings held so far) and exit with ``code``.

    Example:
        >>> try:
        ...     fail("no such file", code=2)
        ... except SystemExit as exit:
        ...     exit.code
        2
    """
    from ctlens.cli.grouped_log import flush_grouped

    flush_grouped()
    print(error_line(message), file=sys.stderr)
    raise SystemExit(code)


def one_line_errors(func: F) -> F:
    """Decorator: a CTLensError (or an unreadable path) prints ``ctlens: error: ...`` and exits 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CTLensError as exc:
            fail(exc.one_line())
        except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            fail(f"{exc.filename}: {exc.strerror}")

    return wrapper  # type: ignore[return-value]
