"""Usage errors (unknown option, missing argument, bad value) are one ``ctlens: error:`` line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

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
