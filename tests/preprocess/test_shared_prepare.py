"""Acceptance on the shared real data: every CT prepares into NeuroVFM's three windows on the RPI model grid,
the MR takes the MR path, and CT / MR is detected right without any mapping.

The volumes are read with ``ctlens.load`` as a user would (the GE head CT with ``uneven="resample"``; its
gantry tilt is corrected by default). Orientation is checked twice: by the axis codes of the model grid
and by sampling the input's HU at the world position of output voxels (a flipped or swapped axis would
put other tissue there).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import ndimage

import ctlens
from ctlens.core.volume import Volume
from ctlens.preprocess import CT_CHANNELS, apply_window, axcodes, detect_mode, prepare_for_inference, to_model_grid
from shared_data import data_dir

pytestmark = pytest.mark.shared_data

PATCH = (4, 16, 16)
CT_CASES = {
    "head CT (GE, tilted, uneven)": ("dcm_qa_ct_ge/dicom", {"uneven": "resample"}),
    "chest CT B40f": ("lung_pet_ct_dx/Lung_Dx-A0002/series_B40f_8mm", {}),
    "chest CT B70f": ("lung_pet_ct_dx/Lung_Dx-A0002/series_B70f_8mm", {}),
    "abdomen CT (NIfTI)": ("totalsegmentator_example/ct_3mm.nii.gz", {}),
}


def _load(rel: str, options: dict) -> Volume:
    path = data_dir() / rel
    if not path.exists():
        pytest.skip(f"shared test data {path} is missing")
    return ctlens.load(path, **options)


def _check_world_agreement(vol: Volume, grid: Volume, window: np.ndarray, n: int = 3000) -> float:
    """Mean |window(input HU at the voxel's world position) - output window| over random body voxels."""
    rng = np.random.default_rng(0)
    inside = np.argwhere(window > 0)
    picks = inside[rng.choice(len(inside), size=min(n, len(inside)), replace=False)]
    source_index = np.linalg.solve(vol.affine, np.c_[grid.world(picks), np.ones(len(picks))].T)[:3]
    keep = np.all((source_index > 0) & (source_index < np.asarray(vol.shape)[:, None] - 1), axis=0)
    assert keep.sum() > n // 2, "most body voxels of the model grid lie inside the input volume"
    hu = ndimage.map_coordinates(vol.array.astype(np.float32), source_index[:, keep], order=1)
    return float(np.mean(np.abs(apply_window(hu, "bone") - window[tuple(picks[keep].T)])))


@pytest.mark.parametrize("case", list(CT_CASES))
def test_ct_prepares_into_three_windows_on_the_rpi_grid(case: str, caplog: pytest.LogCaptureFixture) -> None:
    rel, options = CT_CASES[case]
    vol = _load(rel, options)
    assert detect_mode(vol)[0] == "ct"
    with caplog.at_level(logging.INFO, logger="ctlens.preprocess"):
        arrs, mask, view = prepare_for_inference(vol)  # mode=None: detected, no mapping given
    assert "mode ct" in caplog.text
    assert view == "axial"
    assert list(arrs) == list(CT_CHANNELS)
    for arr in arrs.values():
        assert arr.dtype == np.float32 and arr.shape == mask.shape
        assert all(n % p == 0 for n, p in zip(arr.shape, PATCH, strict=True)), arr.shape
        assert 0.0 <= arr.min() and arr.max() <= 1.0
    assert 0.05 < mask.mean() < 0.95
    grid = to_model_grid(vol, fill_value=-1024)
    assert axcodes(grid) == ("I", "P", "R") and "".join(axcodes(grid)[::-1]) == "RPI"
    assert grid.spacing == (4.0, 1.0, 1.0) and grid.shape == mask.shape
    # same tissue at the same world position: a flipped or swapped axis would fail this by a wide margin
    assert _check_world_agreement(vol, grid, arrs["bone"]) < 0.01
    for axis in (0, 1, 2):
        assert _check_world_agreement(vol, grid, np.flip(arrs["bone"], axis).copy()) > 0.02


def test_mode_detection_without_modality_tags() -> None:
    """Intensities alone (modality tag removed) still put every CT on the CT path and the MR on the MR path."""
    for rel, options in CT_CASES.values():
        vol = _load(rel, options)
        untagged = vol.with_array(vol.array, modality="")
        mode, reason = detect_mode(untagged)
        assert mode == "ct", (rel, reason)
        assert reason.startswith("intensity")
    mr = _load("totalsegmentator_example/mr_3mm.nii.gz", {})
    assert detect_mode(mr)[0] == "mri"
    assert detect_mode(mr.with_array(mr.array, modality=""))[0] == "mri"


def test_mr_takes_the_mr_path(caplog: pytest.LogCaptureFixture) -> None:
    mr = _load("totalsegmentator_example/mr_3mm.nii.gz", {})
    with caplog.at_level(logging.INFO, logger="ctlens.preprocess"):
        arrs, mask, view = prepare_for_inference(mr)
    assert "mode mri" in caplog.text
    assert list(arrs) == ["mri"] and arrs["mri"].shape == mask.shape
    assert all(n % p == 0 for n, p in zip(mask.shape, PATCH, strict=True))
    assert axcodes(to_model_grid(mr)) == ("I", "P", "R")
    assert arrs["mri"].max() == 1.0 and arrs["mri"][mask == 1].mean() > 3 * arrs["mri"][mask == 0].mean()
