"""`ctlens cache build|stats` through the real Typer app."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from synthetic_raw import BAD_STUDIES, make_raw
from typer.testing import CliRunner

from ctlens.cache import CacheManager
from ctlens.cli.main import app


@pytest.fixture(scope="module")
def raw_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic data folder (tests/cache/synthetic_raw.py) per module; copied before building into it."""
    return make_raw(tmp_path_factory.mktemp("template"))


@pytest.fixture
def data_copy(raw_template: Path, tmp_path: Path) -> Callable[[], Path]:
    def copy() -> Path:
        return Path(shutil.copytree(raw_template, tmp_path / "data", symlinks=True))

    return copy


def test_build_then_stats_lists_failures_with_reasons(data_copy: Callable[[], Path]) -> None:
    root = data_copy()
    runner = CliRunner()
    built = runner.invoke(app, ["cache", "build", str(root), "--workers", "1"], env={"COLUMNS": "200"})
    assert built.exit_code == 0, built.output
    stats = CacheManager(root).get_cache_stats(rescan=False)
    assert f"{stats.complete} built" in built.output and f"{len(BAD_STUDIES)} failed" in built.output
    out = runner.invoke(app, ["cache", "stats", str(root)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    for study, reason in BAD_STUDIES.items():
        line = next(row for row in out.output.splitlines() if f" {study} " in row)
        assert reason in line
    again = runner.invoke(app, ["cache", "build", str(root), "--workers", "1"])
    assert f"0 built, {stats.entries} already done" in again.output


def test_missing_folder_is_one_line_error(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["cache", "stats", str(tmp_path / "nope")])
    assert out.exit_code == 2 and "no raw/ folder" in out.output and "Traceback" not in out.output
