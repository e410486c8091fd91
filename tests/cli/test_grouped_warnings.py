"""Repeated warnings are grouped: one line per distinct message with a count, not one identical line per file."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import dicom_factory as fac
import pytest

from ctlens.cli.grouped_log import GroupedLogHandler, capture, install, uninstall


def test_deid_of_30_files_with_the_same_oddity_prints_one_line_with_the_count(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path / "in" / "series", n_slices=30, rows=16, cols=16)  # no BurnedInAnnotation in any
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "ctlens", "deid", str(tmp_path / "in"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    burned = [line for line in lines if "BurnedInAnnotation" in line]
    assert len(burned) == 1, result.stderr
    assert burned[0].startswith("ctlens: warning: ") and burned[0].endswith("(x30 files)")
    assert str(tmp_path / "in" / "series") in burned[0]  # where the files are, not 30 file names
    assert len(lines) == 1, result.stderr
    assert "de-identified 30 file(s)" in result.stdout


def _handler() -> tuple[GroupedLogHandler, logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = GroupedLogHandler(lambda: out)
    log = logging.getLogger("ctlens.test_grouped_warnings")
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.INFO)
    return handler, log, out


def test_distinct_messages_and_folders_stay_apart() -> None:
    handler, log, out = _handler()
    for i in range(3):
        log.warning("%s: skipped (not a DICOM file)", Path(f"/data/a/{i}.txt"))
        log.warning("%s: BurnedInAnnotation is not given", f"/data/b/{i}.dcm")
    log.warning("%s: skipped (%s)", "/data/c/x.dcm", "truncated")
    assert out.getvalue() == ""  # held until the command ends
    handler.flush_groups()
    assert out.getvalue().splitlines() == [
        "ctlens: warning: /data/a: skipped (not a DICOM file) (x3 files)",
        "ctlens: warning: /data/b: BurnedInAnnotation is not given (x3 files)",
        "ctlens: warning: /data/c/x.dcm: skipped (truncated)",
    ]


def test_other_messages_print_at_once_and_repeats_are_counted() -> None:
    handler, log, out = _handler()
    for _ in range(4):
        log.warning("training loss is not finite")
    log.info("series picked")
    assert out.getvalue().splitlines() == ["ctlens: warning: training loss is not finite", "ctlens: series picked"]
    handler.flush_groups()
    assert out.getvalue().splitlines()[-1] == "ctlens: warning: training loss is not finite (repeated 3 more times)"


def test_python_warnings_go_through_the_same_handler(capsys: pytest.CaptureFixture[str]) -> None:
    install()
    try:
        with capture(), warnings.catch_warnings():
            warnings.simplefilter("always")
            for _ in range(5):
                warnings.warn("Invalid value for VR UI: '1.2.x'", UserWarning, stacklevel=1)
    finally:
        uninstall()
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "ctlens: warning: UserWarning: Invalid value for VR UI: '1.2.x'",
        "ctlens: warning: UserWarning: Invalid value for VR UI: '1.2.x' (repeated 4 more times)",
    ]
