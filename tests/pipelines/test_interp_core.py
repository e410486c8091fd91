"""interpolate(): output geometry, baselines, flow, self-supervised and the errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.core.errors import InterpolationError
from ctlens.core.volume import Volume
from ctlens.pipelines.interp import classic as interp_classic
from ctlens.pipelines.interp.interpolate import interpolate, interpolate_array
from ctlens.pipelines.interp.metrics import psnr


def _volume(n: int = 5, spacing: tuple[float, float, float] = (5.0, 0.8, 0.8), **kw) -> Volume:
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1000, (n, 12, 10)).astype(np.int16)
    return Volume(arr, spacing=spacing, origin=(10.0, -20.0, 30.0), **kw)


@pytest.mark.parametrize("method", ["nearest", "linear", "cubic", "flow"])
def test_known_slices_and_geometry_exact(method: str) -> None:
    vol = _volume()
    out = interpolate(vol, factor=4, method=method, progress=False)
    assert out.shape == (17, 12, 10)
    assert out.spacing == (1.25, 0.8, 0.8)
    assert out.array.dtype == np.int16
    np.testing.assert_array_equal(out.array[::4], vol.array)  # every input slice reappears unchanged
    for k in range(vol.shape[0]):  # ... at the same patient position
        np.testing.assert_allclose(out.world((4 * k, 3, 2)), vol.world((k, 3, 2)), atol=1e-9)
    assert out.meta["interpolation"]["method"] == method


def test_geometry_with_direction_and_non_integer_factor() -> None:
    direction = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # like a NIfTI load
    vol = Volume(np.zeros((4, 6, 6), np.float32), spacing=(3.0, 1.0, 1.0), origin=(1.0, 2.0, 3.0), direction=direction)
    out = interpolate(vol, spacing_z=1.2, method="linear", progress=False)
    assert out.shape[0] == 8  # positions 0, 1.2, ..., 8.4 mm <= 9 mm
    assert out.array.dtype == np.float32
    np.testing.assert_allclose(out.world((7, 0, 0)), vol.world((7 * 1.2 / 3.0, 0, 0)), atol=1e-9)
    np.testing.assert_array_equal(out.direction, direction)


def test_linear_and_cubic_reproduce_polynomials() -> None:
    z = np.arange(16.0)
    ramp = np.broadcast_to(z[:, None, None], (16, 3, 3)).astype(np.float32)
    positions = np.linspace(0, 15, 61)
    np.testing.assert_allclose(interpolate_array(ramp, positions, "linear", progress=False)[:, 0, 0], positions)
    quad = ramp**2
    cubic = interpolate_array(quad, positions, "cubic", progress=False)[:, 0, 0]
    inner = (positions > 5) & (positions < 10)  # away from the mirror boundary
    np.testing.assert_allclose(cubic[inner], positions[inner] ** 2, atol=0.1)


def test_cubic_row_tiles_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    arr = np.random.default_rng(1).normal(size=(6, 20, 7)).astype(np.float32)
    positions = np.linspace(0, 5, 16)
    whole = interpolate_array(arr, positions, "cubic", progress=False)
    monkeypatch.setattr(interp_classic, "ROW_TILE_BYTES", 6 * 7 * 8 * 3)  # three rows per tile
    np.testing.assert_allclose(interpolate_array(arr, positions, "cubic", progress=False), whole, atol=1e-6)


def _moving_blobs(n: int, shift: float) -> np.ndarray:
    y, x = np.mgrid[:48, :48]
    return np.stack(
        [1000 * np.exp(-((x - 12 - shift * k) ** 2 + (y - 24) ** 2) / 20.0) - 500 for k in range(n)]
    ).astype(np.float32)


def test_flow_beats_linear_on_moving_structures() -> None:
    thin = _moving_blobs(9, 1.5)  # a blob moving 1.5 px per thin slice, 6 px per thick slice
    thick, positions = thin[::4], np.arange(9) / 4
    scored = np.arange(9) % 4 != 0
    linear = interpolate_array(thick, positions, "linear", progress=False)
    flow = interpolate_array(thick, positions, "flow", progress=False)
    assert psnr(flow[scored], thin[scored]) > psnr(linear[scored], thin[scored]) + 3


def test_self_supervised_runs_and_keeps_known_slices_with_drop() -> None:
    vol = Volume(_moving_blobs(3, 4.0).astype(np.int16), spacing=(4.0, 1.0, 1.0))
    out = interpolate(vol, factor=2, method="self_supervised", profile="drop", steps=3, progress=False)
    assert out.shape == (5, 48, 48)
    np.testing.assert_array_equal(out.array[::2], vol.array)


def test_flow_falls_back_to_cubic_where_warped_neighbours_disagree() -> None:
    thick = np.zeros((4, 32, 32), np.float32)
    thick[2, 10:20, 10:20] = 1000.0  # a structure that exists in one slice only: no motion explains it
    positions = np.arange(13) / 4
    cubic = interpolate_array(thick, positions, "cubic", progress=False)
    flow = interpolate_array(thick, positions, "flow", progress=False)
    pure = interpolate_array(thick, positions, "flow", confidence=0.0, flow_weight=1.0, progress=False)
    inside = (slice(5, 11), slice(12, 18), slice(12, 18))  # between slices 1 and 2.5, inside the square
    np.testing.assert_allclose(flow[inside], cubic[inside], atol=1.0)
    assert np.abs(pure[inside] - cubic[inside]).max() > 10.0  # the pure flow estimate differs there


def test_untrained_self_supervised_is_exactly_cubic() -> None:
    thick = np.random.default_rng(3).normal(0, 300, (4, 20, 20)).astype(np.float32)
    positions = np.arange(7) / 2
    cubic = interpolate_array(thick, positions, "cubic", progress=False)
    smore = interpolate_array(thick, positions, "self_supervised", factor=2, steps=0, progress=False)
    np.testing.assert_allclose(smore, cubic, atol=1e-2)  # zero-initialised last layer


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factor": 0.5}, "factor 0.5 < 1"),
        ({"spacing_z": 10.0}, "factor 0.5 < 1"),
        ({}, "exactly one of"),
        ({"factor": 2, "spacing_z": 2.5}, "exactly one of"),
        ({"factor": 2, "method": "magic"}, "unknown interpolation method"),
    ],
)
def test_bad_requests_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InterpolationError, match=message):
        interpolate(_volume(), progress=False, **{"method": "linear", **kwargs})


def test_single_slice_sagittal_and_oblique_input_refused() -> None:
    with pytest.raises(InterpolationError, match="only 1 slice"):
        interpolate(_volume(n=1), factor=2, progress=False)
    sagittal = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # axis 0 runs along L
    with pytest.raises(InterpolationError, match="not the axial slice axis"):
        interpolate(_volume(direction=sagittal), factor=2, progress=False)
    sheared = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.8]])
    with pytest.raises(InterpolationError, match="oblique"):
        interpolate(_volume(direction=sheared), factor=2, progress=False)


def test_gantry_tilted_but_orthogonal_grid_is_accepted() -> None:
    angle = np.radians(18.5)
    direction = np.array([[0.0, 0.0, 1.0], [np.sin(angle), np.cos(angle), 0.0], [np.cos(angle), -np.sin(angle), 0.0]])
    out = interpolate(_volume(direction=direction), factor=2, method="linear", progress=False)
    assert out.shape[0] == 9


def test_ldm_needs_a_readable_checkpoint(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(InterpolationError, match="needs checkpoint"):
        interpolate(_volume(), factor=2, method="ldm", progress=False)
    with pytest.raises(InterpolationError, match="checkpoint not found"):
        interpolate(_volume(), factor=2, method="ldm", checkpoint=tmp_path, progress=False)


def test_self_supervised_loss_choice() -> None:
    """L2 (default) and L1 train different networks from the same seed; anything else is refused."""
    thin = _moving_blobs(9, 1.5)
    thick, positions = thin[::2], np.arange(9) / 2
    l2 = interpolate_array(thick, positions, "self_supervised", factor=2, steps=20, progress=False)
    l1 = interpolate_array(thick, positions, "self_supervised", factor=2, steps=20, loss="l1", progress=False)
    default = interpolate_array(thick, positions, "self_supervised", factor=2, steps=20, loss="l2", progress=False)
    np.testing.assert_array_equal(l2, default)
    assert np.abs(l2 - l1).max() > 1e-3
    with pytest.raises(ValueError, match="loss"):
        interpolate_array(thick, positions, "self_supervised", factor=2, steps=1, loss="huber", progress=False)
