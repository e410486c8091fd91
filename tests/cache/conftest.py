"""Fixtures for the cache tests (the synthetic data folder comes from ``synthetic_raw.py``)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from synthetic_raw import make_raw  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_raw_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic data folder per session (copy it before building into it)."""
    return make_raw(tmp_path_factory.mktemp("template"))


@pytest.fixture
def data_copy(synthetic_raw_template: Path, tmp_path: Path) -> Callable[[], Path]:
    """``data_copy()`` -> a fresh copy of the synthetic data folder under this test's tmp_path."""

    def copy() -> Path:
        dest = tmp_path / "data"
        shutil.copytree(synthetic_raw_template, dest, symlinks=True)
        return dest

    return copy
