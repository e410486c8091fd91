"""The root ``ctlens`` command group: usage errors as one line, grouped warnings printed when a command ends.

An unexpected exception (a ctlens bug) is one line too, ``ctlens: error: <command>: unexpected <type>: <message>
(a ctlens bug: ...)`` with exit status 70; ``CTLENS_DEBUG=1`` lets the traceback through. Running out of memory
is one line with exit status 1.

Click reports a usage error (unknown option, missing argument, bad value, ``typer.BadParameter`` raised by a
command) as a usage block and a boxed message; here it is the line every other ``ctlens`` error uses,
``ctlens: error: <command>: <message>; see 'ctlens <command> --help'``, on stderr, exit status 2. ``--help`` and
a bare ``ctlens`` (the help) are unchanged.

Example:
    >>> import typer
    >>> app = typer.Typer(cls=CtlensGroup)
    >>> @app.command()
    ... def hello(name: str) -> None:
    ...     print(f"hello {name}")
    >>> @app.command()
    ... def bye() -> None:
    ...     pass
    >>> from typer.testing import CliRunner
    >>> result = CliRunner().invoke(app, ["hello", "--loud"])
    >>> result.exit_code, result.stderr
    (2, "ctlens: error: hello: No such option: --loud; see 'ctlens hello --help'\\n")
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from ctlens.cli.errors import EXIT_USAGE_ERROR, fail
from ctlens.cli.grouped_log import capture

try:  # Typer >= 0.20 carries its own copy of Click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer runs on the click package
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[assignment]

__all__ = ["EXIT_INTERNAL_ERROR", "CtlensGroup", "usage_message"]


def usage_message(exc: ClickException) -> str:
    """``<command>: <message>; see '<command path> --help'`` for a click error (its message alone at the root).

    Example:
        >>> usage_message(UsageError("Missing argument 'PATH'."))
        "Missing argument 'PATH'."
    """
    message = exc.format_message()
    ctx: typer.Context | None = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    path = ctx.command_path
    command = path.split(" ", 1)[1] if " " in path else ""
    where = f"{command}: " if command else ""
    return f"{where}{message.rstrip('.')}; see '{path} --help'"


EXIT_INTERNAL_ERROR = 70
"""Exit status of an unexpected error inside ctlens (``EX_SOFTWARE`` of BSD's sysexits.h)."""


def _command(args: Sequence[str] | None) -> str:
    """``"<command>: "`` for the error line: the first argument that is not an option, else nothing."""
    words = list(sys.argv[1:] if args is None else args)
    command = next((w for w in words if not str(w).startswith("-")), "")
    return f"{command}: " if command else ""


def _first_line(exc: BaseException) -> str:
    """The exception's message, first line only and at most 200 characters (no dump of data into the terminal)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else "no message")[:200]


class CtlensGroup(TyperGroup):
    """A Typer group whose ``main`` prints click usage errors as one ``ctlens: error:`` line (module doc)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        prog_name = "ctlens"  # messages name the command as users know it, however Python was started
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        with capture():
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except NoArgsIsHelpError:  # the help is already printed, as Typer does
                code = EXIT_USAGE_ERROR
            except UsageError as exc:
                fail(usage_message(exc), EXIT_USAGE_ERROR)
            except ClickException as exc:
                fail(usage_message(exc), exc.exit_code)
            except typer.Abort:
                fail("aborted", 1)
            except MemoryError:
                fail(f"{_command(args)}out of memory (the input may be larger than this machine can hold)", 1)
            except Exception as exc:  # noqa: BLE001 - a bug: one line, not a traceback (CTLENS_DEBUG=1 shows it)
                if os.environ.get("CTLENS_DEBUG", "") not in ("", "0"):
                    raise
                fail(
                    f"{_command(args)}unexpected {type(exc).__name__}: {_first_line(exc)} (a ctlens bug: rerun "
                    "with CTLENS_DEBUG=1 for the traceback and report it)",
                    EXIT_INTERNAL_ERROR,
                )
        # Without standalone mode click returns the command's value (None) or the code of a ctx.exit / typer.Exit.
        sys.exit(code if isinstance(code, int) else 0)
