"""CT windows and MR normalization."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.preprocess import WINDOWS, apply_window, mr_normalize


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
