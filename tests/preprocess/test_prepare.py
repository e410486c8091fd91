"""prepare_for_inference / to_model_grid end to end."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.preprocess import axcodes, prepare_for_inference, to_model_grid, token_background_flags

PATCH = (4, 16, 16)


def _check_outputs(arrs: dict[str, np.ndarray], mask: np.ndarray, keys: set[str]) -> None:
    assert set(arrs) == keys
    for arr in arrs.values():
        assert arr.dtype == np.float32 and arr.shape == mask.shape
        assert all(n % p == 0 for n, p in zip(arr.shape, PATCH, strict=True))
        assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    token_background_flags(mask, PATCH)  # the grid tokenizes


def test_synthetic_coronal_acquisition() -> None:
    # coronal series: slices step Anterior (5 mm), rows go Inferior, columns go Left (0.8 mm)
    direction = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    ct = np.full((9, 40, 50), -1000, np.int16)
    ct[2:7, 10:30, 10:40] = 40
    vol = Volume(ct, spacing=(5.0, 0.8, 0.8), origin=(-20.0, 30.0, 60.0), direction=direction)
    arrs, mask, view = prepare_for_inference(vol, mode="ct")
    assert view == "coronal"
    _check_outputs(arrs, mask, {"brain", "blood", "bone"})
    grid = to_model_grid(vol, fill_value=-1024)
    assert axcodes(grid) == ("P", "I", "R")  # RPI with the slice (P) axis swapped to the front
    assert grid.spacing == (4.0, 1.0, 1.0) and grid.shape == mask.shape
    centre_in = vol.world((np.asarray(vol.shape) - 1) / 2)
    centre_out = grid.world((np.asarray(grid.shape) - 1) / 2)
    # centred resampling and padding: the centre moves by at most half an output voxel (odd padding)
    np.testing.assert_array_less(np.abs(grid.index(centre_in) - grid.index(centre_out)), 0.5 + 1e-9)
    forced = to_model_grid(vol, z_dim=0)
    assert axcodes(forced) == ("I", "P", "R") and forced.spacing == (4.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="z_dim"):
        to_model_grid(vol, z_dim=3)
    with pytest.raises(ValueError, match="mode"):
        prepare_for_inference(vol, mode="pet")


@pytest.mark.shared_data
def test_real_ct(ts_volume, caplog: pytest.LogCaptureFixture) -> None:
    vol = ts_volume("ct_3mm")
    with caplog.at_level(logging.INFO, logger="ctlens.preprocess"):
        arrs, mask, view = prepare_for_inference(vol)
    assert "mode ct" in caplog.text
    assert view == "axial"
    _check_outputs(arrs, mask, {"brain", "blood", "bone"})
    grid = to_model_grid(vol)
    assert "".join(axcodes(grid)[::-1]) == "RPI"
    assert grid.spacing == (4.0, 1.0, 1.0) and grid.shape == mask.shape == (84, 304, 368)
    assert 0.3 < mask.mean() < 0.9
    assert (arrs["bone"][mask == 0] <= (-500 - (600 - 1400)) / 2800).mean() > 0.95  # background: air and table
    flags = token_background_flags(mask, PATCH)
    assert 0 < flags.mean() < 1


@pytest.mark.shared_data
def test_real_mr(ts_volume, caplog: pytest.LogCaptureFixture) -> None:
    vol = ts_volume("mr_3mm")
    with caplog.at_level(logging.INFO, logger="ctlens.preprocess"):
        arrs, mask, view = prepare_for_inference(vol)
    assert "mode mri" in caplog.text
    assert view == "axial"
    _check_outputs(arrs, mask, {"mri"})
    assert arrs["mri"].max() == 1.0 and 0.2 < mask.mean() < 0.95
    assert arrs["mri"][mask == 1].mean() > 3 * arrs["mri"][mask == 0].mean()


@pytest.mark.shared_data
def test_load_image_uses_the_ctlens_loader(ts_dir) -> None:
    pytest.importorskip("ctlens.io.loader")
    from ctlens.preprocess import load_image

    vol = load_image(ts_dir / "ct_3mm.nii.gz")
    assert isinstance(vol, Volume) and vol.shape == (112, 101, 122)
