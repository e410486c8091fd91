"""Resampling: exact output geometry, values (a linear ramp stays a ramp), methods, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.preprocess import resample, resampled_grid

OBLIQUE = np.array(
    [[0.0, 0.0, 1.0], [0.0, np.cos(0.3), np.sin(0.3)], [1.0, 0.0, 0.0]]
)  # array z -> ~S tilted, y -> ~P, x -> L
OBLIQUE[:, 0] = np.cross(OBLIQUE[:, 2], OBLIQUE[:, 1])  # keep it orthonormal, right-handed


def _ramp_volume(shape=(12, 30, 26), spacing=(3.0, 0.8, 0.9), direction=None, coef=(0.5, -2.0, 3.0)) -> Volume:
    """Values are a linear function of the LPS position, so linear interpolation must reproduce them."""
    direction = np.eye(3)[:, ::-1] if direction is None else direction
    base = Volume(np.zeros(shape, np.float64), spacing=spacing, origin=(-40.0, 12.0, 7.5), direction=direction)
    idx = np.indices(shape).reshape(3, -1).T
    values = base.world(idx) @ np.asarray(coef) + 100.0
    return base.with_array(values.reshape(shape), modality="MR")


@pytest.mark.parametrize("direction", [None, OBLIQUE])
@pytest.mark.parametrize("new", [(4.0, 1.0, 1.0), (1.0, 0.5, 2.0), (3.0, 0.8, 0.9)])
def test_output_geometry_is_exact(direction, new) -> None:
    src = _ramp_volume(direction=direction)
    out = resample(src, new)
    extent = np.asarray(src.shape) * np.asarray(src.spacing)
    assert out.shape == tuple(int(np.floor(e / s + 0.5)) for e, s in zip(extent, new, strict=True))
    assert out.spacing == new
    np.testing.assert_allclose(out.direction, src.direction)
    # field of view: both ends within half an output voxel of the input's ends (a quarter when centred)
    lo_in = src.index(src.world((0, 0, 0))) - 0.5
    corner0 = src.index(out.world(np.zeros(3))) - np.asarray(new) / np.asarray(src.spacing) / 2
    corner1 = src.index(out.world(np.asarray(out.shape) - 1.0)) + np.asarray(new) / np.asarray(src.spacing) / 2
    sp = np.asarray(src.spacing)
    assert np.all(np.abs((corner0 - lo_in) * sp) <= np.asarray(new) / 4 + 1e-9)
    assert np.all(np.abs((corner1 - (np.asarray(src.shape) - 0.5)) * sp) <= np.asarray(new) / 4 + 1e-9)
    # world positions of voxel centres step by the new spacing along the (unchanged) axis directions
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = 1
        np.testing.assert_allclose(out.world(step) - out.world((0, 0, 0)), out.direction[:, axis] * new[axis])
    assert (out.shape, out.origin) == resampled_grid(src, new)


@pytest.mark.parametrize("direction", [None, OBLIQUE])
def test_linear_ramp_stays_a_ramp(direction) -> None:
    src = _ramp_volume(direction=direction)
    for align in ("center", "origin"):
        out = resample(src, (4.0, 1.0, 1.0), align=align)
        idx = np.indices(out.shape).reshape(3, -1).T
        where = out.world(idx)
        inside = np.all((src.index(where) >= 0) & (src.index(where) <= np.asarray(src.shape) - 1), axis=1)
        assert inside.mean() > 0.7
        expected = where @ np.array([0.5, -2.0, 3.0]) + 100.0
        np.testing.assert_allclose(out.array.reshape(-1)[inside], expected[inside], atol=1e-6)


def test_align_origin_keeps_first_voxel_and_center_keeps_the_middle() -> None:
    src = _ramp_volume(shape=(10, 20, 20), spacing=(2.0, 0.5, 0.5))
    by_origin = resample(src, (4.0, 1.0, 1.0), align="origin")
    assert by_origin.origin == src.origin
    assert by_origin.array[0, 0, 0] == pytest.approx(src.array[0, 0, 0])
    centred = resample(src, (4.0, 1.0, 1.0))
    mid_in = src.world((np.asarray(src.shape) - 1) / 2)
    mid_out = centred.world((np.asarray(centred.shape) - 1) / 2)
    np.testing.assert_allclose(mid_in, mid_out, atol=1e-9)


def test_fill_value_defaults_and_upsampling_edges() -> None:
    ct = Volume(np.zeros((4, 4, 4), np.int16), spacing=(2.0, 1.0, 1.0))
    assert resample(ct, (1.0, 1.0, 1.0), align="origin").array[-1].min() == -1024  # beyond the last slice
    assert resample(ct, (1.0, 1.0, 1.0)).array.min() == 0  # centred grid: every sample inside
    mr = ct.with_array(np.ones((4, 4, 4), np.float32), modality="MR")
    assert resample(mr, (1.0, 1.0, 1.0), align="origin").array[-1].min() == 0
    assert resample(mr, (1.0, 1.0, 1.0), align="origin", fill_value=-7).array[-1].min() == -7


def test_dtypes_and_methods() -> None:
    labels = Volume(np.random.default_rng(1).integers(0, 5, (6, 10, 10)).astype(np.uint8), spacing=(3.0, 1.0, 1.0))
    nearest = resample(labels, (1.5, 0.5, 0.5), method="nearest")
    assert nearest.array.dtype == np.uint8 and set(np.unique(nearest.array)) <= set(range(5))
    assert resample(labels, (1.5, 0.5, 0.5)).array.dtype == np.float32
    mask = labels.with_array(labels.array > 2)
    assert resample(mask, (6.0, 2.0, 2.0), method="nearest").array.dtype == bool
    smooth = resample(labels.with_array(labels.array.astype(np.float64)), (1.5, 0.5, 0.5), method="bspline")
    assert smooth.array.dtype == np.float64 and smooth.shape == (12, 20, 20)
    half = resample(labels.with_array(labels.array.astype(np.float16)), (3.0, 2.0, 2.0))
    assert half.array.dtype == np.float32


def test_identity_grid_is_a_copy() -> None:
    src = _ramp_volume()
    out = resample(src, src.spacing)
    np.testing.assert_array_equal(out.array, src.array)
    assert out.origin == src.origin and not np.shares_memory(out.array, src.array)


@pytest.mark.parametrize("bad", [(1.0, 1.0), (0.0, 1.0, 1.0), (-1.0, 1.0, 1.0)])
def test_bad_spacing_and_method(bad) -> None:
    src = _ramp_volume()
    with pytest.raises(ValueError, match="spacing_zyx"):
        resample(src, bad)
    with pytest.raises(ValueError, match="method"):
        resample(src, (1.0, 1.0, 1.0), method="cubic")  # type: ignore[arg-type]


def test_full_size_ct_is_fast() -> None:
    ct = Volume(np.zeros((300, 512, 512), np.int16), spacing=(1.0, 0.7, 0.7))
    ct.array[:, 100:400, 100:400] = 40
    start = time.perf_counter()
    out = resample(ct, (4.0, 1.0, 1.0))
    elapsed = time.perf_counter() - start
    assert out.shape == (75, 358, 358)
    assert elapsed < 3.0, f"resampling 512x512x300 took {elapsed:.2f} s"


@pytest.mark.shared_data
def test_real_ct_resampled_keeps_world_values(ts_volume) -> None:
    ct = ts_volume("ct_3mm")
    out = resample(ct, (3.0, 1.5, 1.5), method="nearest", align="origin")
    # with align="origin", every second in-plane output voxel sits exactly on an input voxel centre
    np.testing.assert_array_equal(out.array[:, ::2, ::2][:, : ct.shape[1], : ct.shape[2]], ct.array)
    lin = resample(ct, (4.0, 1.0, 1.0))
    assert lin.array.dtype == np.float32
    assert abs(float(lin.array.mean()) - float(ct.array.mean())) < 25.0  # same anatomy, same HU scale


def test_ct_mask_volume_fills_with_zero() -> None:
    mask = Volume(np.ones((4, 4, 4), bool), spacing=(2.0, 1.0, 1.0))  # modality "CT"
    out = resample(mask, (1.0, 1.0, 1.0), method="nearest", align="origin")
    assert out.array.dtype == bool and not out.array[-1].any() and out.array[:-1].all()
