"""Run the real ``ctlens`` command line in-process (Typer's runner) and split stdout from stderr.

Example:
    >>> result = run_cli("decompress", "/nonexistent/a.ctz", "/tmp/never.nii.gz")
    >>> result.exit_code, result.stderr.startswith("ctlens: error:")
    (2, True)
"""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

__all__ = ["assert_one_line_error", "run_cli"]


def run_cli(*args: str) -> Any:
    """``ctlens ARGS`` in this process; the result has ``exit_code``, ``stdout``, ``stderr`` and ``exception``."""
    from ctlens.cli.main import app

    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result: Any, *must_contain: str) -> str:
    """Assert exit 2, exactly one ``ctlens: error:`` line on stderr naming ``must_contain``, no traceback."""
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ctlens: error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for text in must_contain:
        assert text in errors[0], (text, errors[0])
    return errors[0]
