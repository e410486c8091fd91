"""SliceInterpolationDataset: shapes, value range, determinism and the slice simulations."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.core.errors import InterpolationError
from ctlens.core.volume import Volume
from ctlens.data.slice_pairs import SliceInterpolationDataset, hu_to_model, model_to_hu
from ctlens.data.slice_profiles import simulate_thick, slab_weights


def _ramp() -> Volume:
    z = np.arange(24, dtype=np.float32)[:, None, None] * 10 - 100
    return Volume(np.broadcast_to(z, (24, 20, 20)).copy(), spacing=(1.0, 1.0, 1.0))


def test_items_are_deterministic_and_in_range() -> None:
    ds = SliceInterpolationDataset([_ramp()], factor=4, depth=8, patch=16, simulation="drop", length=5, seed=3)
    a, b = ds[2], ds[2]
    for key in ("thin", "cond", "thick"):
        assert a[key].equal(b[key])
        assert float(a[key].min()) >= -1 and float(a[key].max()) <= 1
    thin, cond = model_to_hu(a["thin"][0].numpy()), model_to_hu(a["cond"][0].numpy())
    np.testing.assert_allclose(thin[::4], cond[::4], atol=0.1)  # drop: known slices are the thin ones
    np.testing.assert_allclose(cond[:5, 0, 0], np.linspace(thin[0, 0, 0], thin[4, 0, 0], 5), atol=0.1)
    assert not ds[0]["thin"].equal(ds[1]["thin"])


def test_round_trip_and_small_images_padded_with_air() -> None:
    hu = np.array([-1024.0, 0.0, 3071.0])
    np.testing.assert_allclose(model_to_hu(hu_to_model(hu)), hu, atol=1e-3)
    small = Volume(np.zeros((8, 10, 12), np.int16), spacing=(1.0, 1.0, 1.0))
    item = SliceInterpolationDataset([small], factor=2, depth=4, patch=16, length=1)[0]
    assert tuple(item["thin"].shape) == (1, 4, 16, 16)
    assert float(item["thin"][0, 0, 15, 15]) == -1.0


def test_slab_profile_has_the_asked_fwhm_and_bad_settings_fail() -> None:
    w = slab_weights(4)
    assert w[len(w) // 2 + 2] == pytest.approx(w[len(w) // 2] / 2, rel=1e-6)  # half maximum at +-FWHM/2
    thin = np.zeros((9, 1, 1))
    thin[4] = 1.0
    assert simulate_thick(thin, 4, "slab")[1, 0, 0] == pytest.approx(w[len(w) // 2])
    with pytest.raises(InterpolationError, match="multiple of factor"):
        SliceInterpolationDataset([_ramp()], factor=4, depth=6)
    with pytest.raises(InterpolationError, match="simulation"):
        SliceInterpolationDataset([_ramp()], simulation="blur")
