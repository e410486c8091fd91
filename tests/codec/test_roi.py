"""ROI detection: detail regions found, flat regions left out, parameters honoured, 2-D and 3-D agree."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.codec.roi import detect_roi, roi_score


def _phantom(n: int = 96) -> np.ndarray:
    rng = np.random.default_rng(1)
    img = np.full((n, n), -1000, np.int16)
    yy, xx = np.mgrid[:n, :n]
    body = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.4 * n) ** 2
    img[body] = 40
    tex = (yy > n // 2) & body & (xx > n // 2)
    img[tex] += rng.integers(-300, 300, tex.sum()).astype(np.int16)
    return img


def test_score_is_bounded_and_high_on_edges_and_texture() -> None:
    img = _phantom()
    s = roi_score(img)
    assert s.dtype == np.float32 and s.shape == img.shape
    assert 0.0 <= s.min() and s.max() <= 1.0
    assert s[2, 2] == 0.0  # flat air
    assert s[70, 70] > 0.5  # texture
    assert s[30, 48] < 0.1  # flat soft tissue inside the body


def test_roi_covers_texture_not_flat_air() -> None:
    img = _phantom()
    m = detect_roi(img, dilation_mm=2.0)
    assert m[70, 70] and not m[2, 2]
    assert not m[30, 48]


def test_percentile_and_dilation_change_coverage() -> None:
    img = _phantom()
    small = detect_roi(img, percentile=85, dilation_mm=0.0).mean()
    large = detect_roi(img, percentile=60, dilation_mm=0.0).mean()
    dilated = detect_roi(img, percentile=85, dilation_mm=4.0).mean()
    assert small < large
    assert small < dilated
    # coarser pixels: the same mm margin is fewer pixels
    assert detect_roi(img, percentile=85, dilation_mm=4.0, spacing=(2.0, 2.0)).mean() < dilated


def test_3d_equals_per_slice_2d() -> None:
    vol = np.stack([_phantom(), np.full((96, 96), -1000, np.int16), _phantom()[::-1]])
    m3 = detect_roi(vol, spacing=(3.0, 0.7, 0.7))
    for k in range(3):
        np.testing.assert_array_equal(m3[k], detect_roi(vol[k], spacing=(0.7, 0.7)))
    assert not m3[1].any()


def test_bad_input_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        detect_roi(np.zeros(5))
    with pytest.raises(ValueError, match="percentile"):
        detect_roi(np.zeros((4, 4)), percentile=120)
