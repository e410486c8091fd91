"""The root ``ctlens`` command group: usage errors as one line, grouped warnings printed when a command ends.

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

__all__ = ["CtlensGroup", "usage_message"]


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
        # Without standalone mode click returns the command's value (None) or the code of a ctx.exit / typer.Exit.
        sys.exit(code if isinstance(code, int) else 0)
