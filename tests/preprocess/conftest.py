"""Fixtures for the preprocess tests: shared-data location and a nibabel -> Volume reader."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ctlens.core.volume import Volume

TS_FOLDER = "totalsegmentator_example"


def _data_dir() -> Path:
    env = os.environ.get("CTLENS_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def nifti_to_volume(path: Path, modality: str = "") -> Volume:
    """Read a NIfTI file with nibabel into a Volume (independent of ctlens.io).

    nibabel gives ``data[i, j, k]`` and a RAS affine; ctlens wants ``[z, y, x]`` = ``[k, j, i]`` and LPS
    (RAS with x and y negated). ``modality=""`` leaves the CT / MR decision to the intensities.
    """
    import nibabel as nib

    image = nib.load(str(path))
    array = np.asanyarray(image.dataobj).transpose(2, 1, 0)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    columns_ijk = affine[:3, :3]
    spacing_ijk = np.linalg.norm(columns_ijk, axis=0)
    return Volume(
        np.ascontiguousarray(array),
        spacing=tuple(spacing_ijk[::-1]),
        origin=tuple(affine[:3, 3]),
        direction=(columns_ijk / spacing_ijk)[:, ::-1],
        modality=modality,
    )


@pytest.fixture(scope="session")
def ts_dir() -> Path:
    """``<data>/totalsegmentator_example``; skips, saying why, when it is absent."""
    folder = _data_dir() / TS_FOLDER
    if not folder.is_dir():
        pytest.skip(f"shared test data not found at {folder} (set CTLENS_DATA_DIR to the shared data folder)")
    return folder


@pytest.fixture(scope="session")
def ts_volume(ts_dir: Path) -> Callable[..., Volume]:
    """``ts_volume("ct_3mm")`` -> that NIfTI file as a Volume with no modality tag (cached)."""
    cache: dict[str, Volume] = {}

    def load(name: str) -> Volume:
        if name not in cache:
            path = ts_dir / f"{name}.nii.gz"
            if not path.is_file():
                pytest.skip(f"shared test file {path} is missing")
            cache[name] = nifti_to_volume(path)
        vol = cache[name]
        return vol.with_array(vol.array.copy())

    return load


@pytest.fixture(scope="session")
def to_volume() -> Callable[..., Volume]:
    """The nibabel -> Volume converter, for tests that build their own NIfTI files."""
    return nifti_to_volume
