"""Locate ../shared/data (or CTLENS_DATA_DIR) for tests; skip with a clear message when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared data folder, or skip the calling test saying why."""
    path = Path(os.environ.get("CTLENS_DATA_DIR") or REPO.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (set CTLENS_DATA_DIR)")
    return path
