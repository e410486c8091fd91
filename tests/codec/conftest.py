"""Fixtures for the codec tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ctlens
from shared_data import data_dir


@pytest.fixture(scope="session")
def shared_series() -> dict[str, np.ndarray]:
    """Every DICOM series under the shared data folder as int16 arrays (GE head resampled, tilt corrected)."""
    from ctlens.io.dicom_headers import dicom_folders

    root = data_dir()
    out = {}
    for folder in dicom_folders(root):
        vol = ctlens.load(folder, uneven="resample")
        out[str(Path(folder).relative_to(root))] = vol
    if not out:
        pytest.skip(f"no DICOM series under {root}")
    return out
