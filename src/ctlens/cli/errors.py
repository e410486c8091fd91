"""Turn CTLensError into one line on stderr and a non-zero exit, never a traceback.

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
from typing import Any, TypeVar

from ctlens.core.errors import CTLensError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INPUT_ERROR = 2


def one_line_errors(func: F) -> F:
    """Decorator: a CTLensError (or an unreadable path) prints ``ctlens: error: ...`` and exits 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CTLensError as exc:
            print(f"ctlens: error: {exc.one_line()}", file=sys.stderr)
            raise SystemExit(EXIT_INPUT_ERROR) from None
        except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            print(f"ctlens: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
            raise SystemExit(EXIT_INPUT_ERROR) from None

    return wrapper  # type: ignore[return-value]
