"""Usage errors (unknown option, missing argument, bad value) are one ``ctlens: error:`` line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from ctlens.cli.group import EXIT_INTERNAL_ERROR, CtlensGroup
from ctlens.cli.main import app

CASES = {
    "unknown option": (["analyze", "scan", "--no-such-option"], "No such option: --no-such-option"),
    "missing argument": (["analyze"], "Missing argument"),
    "missing option value": (["convert", "a", "b", "--series"], "requires an argument"),
    "bad value type": (["payload", "scan", "--budget", "many"], "'--budget'"),
    "value out of range": (["compress", "a", "b.ctz", "--max-error", "900"], "'--max-error'"),
    "bad value in the command": (["prepare", "scan", "--out", "o", "--mode", "pet"], "--mode must be ct, mri or auto"),
    "unknown command": (["analyse", "scan"], "No such command 'analyse'"),
    "subcommand": (["cache", "build"], "cache build: Missing argument"),
    "root option": (["--no-such-option"], "No such option"),
}


def _one_error_line(stderr: str, expected: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ctlens: error: ") and expected in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_usage_error_is_one_line_and_exit_2(case: str) -> None:
    args, expected = CASES[case]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.stderr, expected)
    assert "╭" not in line and "Usage:" not in line
    assert result.stdout == ""


def test_usage_error_names_the_command_and_its_help() -> None:
    result = CliRunner().invoke(app, ["analyze", "scan", "--bogus"])
    assert result.stderr.startswith("ctlens: error: analyze: No such option: --bogus")
    assert result.stderr.rstrip().endswith("see 'ctlens analyze --help'")


def test_usage_error_in_a_real_process_matches_the_input_error_format(tmp_path) -> None:
    env = {**os.environ, "COLUMNS": "80"}  # narrow terminal: a rich box would wrap; the line must not
    usage = subprocess.run(
        [sys.executable, "-m", "ctlens", "analyze", str(tmp_path), "--series"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert usage.returncode == 2
    _one_error_line(usage.stderr, "requires an argument")
    missing = subprocess.run(
        [sys.executable, "-m", "ctlens", "convert", str(tmp_path / "none.nii.gz"), str(tmp_path / "o.nii.gz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 2
    _one_error_line(missing.stderr, "none.nii.gz")


def test_help_is_unchanged() -> None:
    result = CliRunner().invoke(app, ["analyze", "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "--series" in result.stdout and result.stderr == ""
    bare = CliRunner().invoke(app, [])
    assert "Usage:" in bare.stdout and "analyze" in bare.stdout


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer(cls=CtlensGroup)

    @app.command()
    def read(path: str) -> None:
        raise exc

    @app.command()
    def other() -> None:
        pass

    return app


def test_an_unexpected_exception_is_one_line_and_exit_70(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTLENS_DEBUG", raising=False)
    result = CliRunner().invoke(_app_raising(ValueError("bad value\nsecond line " + "x" * 500)), ["read", "a.nii"])
    assert result.exit_code == EXIT_INTERNAL_ERROR, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("ctlens: error: read: unexpected ValueError: bad value (a ctlens bug")
    assert "second line" not in lines[0] and "CTLENS_DEBUG=1" in lines[0]


def test_ctlens_debug_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTLENS_DEBUG", "1")
    result = CliRunner().invoke(_app_raising(KeyError("k")), ["read", "a.nii"])
    assert isinstance(result.exception, KeyError)


def test_out_of_memory_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTLENS_DEBUG", raising=False)
    result = CliRunner().invoke(_app_raising(MemoryError()), ["read", "a.nii"])
    assert result.exit_code == 1 and result.stderr.startswith("ctlens: error: read: out of memory"), result.stderr
