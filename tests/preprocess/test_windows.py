"""CT windows and MR normalization."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from ctlens.preprocess import WINDOWS, apply_window, mr_normalize
from ctlens.preprocess.windows import to_display_uint8, window_limits


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_window_edges_map_to_0_and_1(name: str) -> None:
    width, level = WINDOWS[name]
    hu = np.array([-3024, level - width / 2, level, level + width / 2, 4000], np.float64)
    out = apply_window(hu, name)
    assert out.dtype == np.float32
    assert out.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert apply_window(hu.astype(np.int16), (width, level)).tolist() == out.tolist()


def test_window_values_and_table() -> None:
    assert WINDOWS["brain"] == (80, 40) and WINDOWS["blood"] == (200, 80) and WINDOWS["bone"] == (2800, 600)
    assert WINDOWS["lung"] == (1500, -600) and WINDOWS["mediastinum"] == (350, 40)
    assert WINDOWS["soft_tissue"] == (400, 40)
    ramp = apply_window(np.arange(-100, 200), "brain")
    assert np.all(np.diff(ramp) >= 0) and ramp.min() == 0 and ramp.max() == 1
    assert apply_window(np.array([[10.0]]), "brain").shape == (1, 1)


def test_window_errors() -> None:
    with pytest.raises(ValueError, match="known"):
        apply_window(np.zeros(2), "liver")
    with pytest.raises(ValueError, match="positive"):
        apply_window(np.zeros(2), (0, 40))


def test_mr_normalize_uses_nonzero_percentiles() -> None:
    rng = np.random.default_rng(0)
    body = rng.uniform(100, 900, size=10_000)
    body[:3] = [1e6, 2e6, -5e5]  # outliers get clipped
    alone = mr_normalize(body)
    padded = mr_normalize(np.concatenate([body, np.zeros(50_000)]))  # zero padding does not move percentiles
    assert alone.dtype == np.float32 and alone.min() == 0.0 and alone.max() == 1.0
    np.testing.assert_array_equal(padded[: body.size], alone)
    low, high = np.percentile(body, [0.5, 99.5])
    np.testing.assert_allclose(alone[3:], np.clip((body[3:] - low) / (high - low), 0, 1), atol=1e-6)
    assert mr_normalize(body, 0, 100).max() == 1.0


def test_mr_normalize_degenerate_inputs() -> None:
    assert not mr_normalize(np.full((3, 3), 42.0)).any()
    assert not mr_normalize(np.zeros((3, 3))).any()
    with_nan = mr_normalize(np.array([np.nan, 1.0, 2.0, 3.0, np.inf]))
    assert np.isfinite(with_nan).all() and with_nan[0] == 0 and with_nan[-1] == 0
    with pytest.raises(ValueError):
        mr_normalize(np.ones(3), low=50, high=10)


def _exact_half_up(hu: int, lo: float, hi: float) -> int:
    """The display rule in exact rational arithmetic: clip((hu - lo) / (hi - lo), 0, 1) * 255, rounded half up."""
    value = min(max((Fraction(hu) - Fraction(lo)) / (Fraction(hi) - Fraction(lo)), Fraction(0)), Fraction(1)) * 255
    return math.floor(value + Fraction(1, 2))


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_display_uint8_is_exact_half_up_rounding_of_the_window(name: str) -> None:
    lo, hi = window_limits(name)
    hu = np.arange(int(lo) - 5, int(hi) + 6, dtype=np.int16)
    got = to_display_uint8(hu, lo, hi)
    assert got.dtype == np.uint8 and got.shape == hu.shape
    assert got.tolist() == [_exact_half_up(int(h), lo, hi) for h in hu]
    # exact ties exist and go up, also from an even grey level (where round-half-even would stay)
    ties = [int(h) for h in hu if ((Fraction(int(h)) - Fraction(lo)) * 255 / Fraction(hi - lo)).denominator == 2]
    even_floor = [h for h in ties if math.floor((Fraction(h) - Fraction(lo)) * 255 / Fraction(hi - lo)) % 2 == 0]
    assert even_floor, "no tie on an even grey level in this window"
    h = even_floor[0]
    assert int(to_display_uint8(np.array([h]), lo, hi)[0]) == math.floor((h - lo) * 255 / (hi - lo)) + 1
    # the same pixels as the float [0, 1] window of apply_window, scaled and rounded half up
    floats = np.random.default_rng(0).uniform(lo - 100, hi + 100, 5000)
    np.testing.assert_array_equal(
        to_display_uint8(floats, lo, hi), (apply_window(floats, name) * 255 + 0.5).astype(np.uint8)
    )


def test_display_uint8_edges_and_special_values() -> None:
    a = np.array([[-10.0, 0.0, 1.0, 2.0, np.nan, np.inf, -np.inf]])
    assert to_display_uint8(a, 0, 1).tolist() == [[0, 0, 255, 255, 0, 255, 0]]
    assert to_display_uint8(np.array([0.5 / 255, 0.49 / 255]), 0, 1).tolist() == [1, 0]
    for dtype in (np.int16, np.uint16, np.float64, np.float32, bool):
        out = to_display_uint8(np.array([0, 1], dtype), 0, 1)
        assert out.dtype == np.uint8 and out.tolist() == [0, 255]
    ramp = to_display_uint8(np.linspace(-5, 105, 1000), 0, 100)
    assert np.all(np.diff(ramp.astype(int)) >= 0) and ramp.min() == 0 and ramp.max() == 255


def test_display_uint8_equal_limits_is_a_step_and_bad_limits_raise() -> None:
    assert to_display_uint8(np.array([6.0, 7.0, 7.5, np.nan]), 7, 7).tolist() == [0, 0, 255, 0]
    assert not to_display_uint8(np.full((3, 3), 7.0), 7, 7).any()  # a constant image is black
    for lo, hi in ((1, 0), (np.nan, 1), (0, np.inf)):
        with pytest.raises(ValueError, match="lo <= hi"):
            to_display_uint8(np.zeros(2), lo, hi)


def test_window_limits() -> None:
    assert window_limits("lung") == (-1350.0, 150.0) and window_limits("brain") == (0.0, 80.0)
    assert window_limits((400, 40)) == (-160.0, 240.0)
    with pytest.raises(ValueError, match="known"):
        window_limits("liver")
    with pytest.raises(ValueError, match="positive"):
        window_limits((-1, 0))


def test_montage_draws_with_the_display_rule() -> None:
    from ctlens.preprocess.montage import _HEADER_H, _LABEL_W, render_montage

    ramp = np.broadcast_to(np.linspace(0, 1, 40, dtype=np.float32), (3, 40, 40))
    image = np.asarray(render_montage({"r": ramp}, slices=[1], tile=40))
    tile = image[_HEADER_H : _HEADER_H + 40, _LABEL_W : _LABEL_W + 40]  # the one tile, below the header
    np.testing.assert_array_equal(tile, to_display_uint8(ramp[1], 0, 1))
