"""Foreground masks and per-token background flags."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.preprocess import foreground_mask, mr_threshold, reorient, token_background_flags, tokenize


def _ct_phantom() -> tuple[np.ndarray, np.ndarray]:
    """Chest-like CT: an elliptic body with two air-filled lungs, a table below, noise specks in the air."""
    z, y, x = np.indices((8, 64, 64))
    ct = np.full((8, 64, 64), -1000, np.int16)
    body = ((y - 28) / 22.0) ** 2 + ((x - 32) / 26.0) ** 2 <= 1
    ct[body] = 40
    for cx in (20, 44):
        ct[(((y - 28) / 10.0) ** 2 + ((x - cx) / 7.0) ** 2 <= 1)] = -850  # lungs: holes in the body
    ct[:, 56:58, 4:60] = 200  # table: 2 voxels thick, apart from the body
    ct[:, 5, 5] = 300  # a speck of noise
    return ct, body


def test_ct_mask_keeps_body_and_lungs_drops_table_and_noise() -> None:
    ct, body = _ct_phantom()
    mask = foreground_mask(ct, "ct")
    assert mask.dtype == bool and mask.shape == ct.shape
    assert (mask == body).mean() > 0.99  # lungs filled, opening rounds only a few rim voxels
    assert not mask[:, 56:58].any() and not mask[:, 5, 5].any()
    assert mask[:, 28, 20].all() and mask[:, 28, 44].all()  # inside the lungs
    no_fill = foreground_mask(ct, "ct", fill_holes=False)
    assert not no_fill[:, 28, 20].any()
    raw = foreground_mask(ct, "ct", opening_iterations=0, min_component_fraction=0.0, fill_holes=False)
    np.testing.assert_array_equal(raw, ct > -500)  # NeuroVFM's plain threshold


def test_several_large_components_are_kept() -> None:
    legs = np.full((4, 40, 60), -1000, np.int16)
    legs[:, 10:30, 5:25] = 30
    legs[:, 10:30, 35:52] = 30
    mask = foreground_mask(legs, "ct")
    assert mask[:, 20, 15].all() and mask[:, 20, 40].all()
    only_largest = foreground_mask(legs, "ct", min_component_fraction=1.0)
    assert only_largest[:, 20, 15].all() and not only_largest[:, 20, 40].any()


def test_mr_mask_threshold_and_cleaning() -> None:
    rng = np.random.default_rng(0)
    z, y, x = np.indices((6, 48, 48))
    head = ((y - 24) / 18.0) ** 2 + ((x - 24) / 15.0) ** 2 <= 1
    mr = np.abs(rng.normal(0, 8, head.shape))  # Rician-like background noise
    mr[head] = rng.normal(600, 60, head.sum())
    mr[((y - 24) / 5.0) ** 2 + ((x - 24) / 5.0) ** 2 <= 1] = 20.0  # dark CSF inside
    mask = foreground_mask(mr, "mri")
    assert (mask == head).mean() > 0.99 and mask[:, 24, 24].all()
    assert mr_threshold(mr) > 8 * 3  # well above the noise
    assert not foreground_mask(np.zeros((2, 8, 8)), "mri").any()


def test_mode_detection_and_volume_input() -> None:
    ct, body = _ct_phantom()
    vol = Volume(ct, modality="")
    np.testing.assert_array_equal(foreground_mask(vol), foreground_mask(ct, "ct"))
    with pytest.raises(ValueError, match="mode"):
        foreground_mask(ct, "pet")


def test_slice_axis_controls_hole_filling() -> None:
    ring = np.zeros((20, 5, 20), np.float32)  # slices along axis 1
    ring[3:17, :, 3:17] = 100.0
    ring[8:12, :, 8:12] = 0.0
    assert foreground_mask(ring, "mri", slice_axis=1)[10, 2, 10]
    assert not foreground_mask(ring, "mri", slice_axis=0)[10, 2, 10]


def test_background_flags_match_the_mask_in_token_order() -> None:
    rng = np.random.default_rng(1)
    mask = np.zeros((8, 32, 48), bool)
    mask[:, 8:30, 5:40] = True
    mask |= rng.random(mask.shape) > 0.97
    tokens, coords = tokenize(mask)
    flags = token_background_flags(mask)
    assert flags.dtype == np.uint8 and flags.shape == (len(tokens),)
    np.testing.assert_array_equal(flags, (~tokens.all(axis=1)).astype(np.uint8))  # NeuroVFM: any background voxel
    fraction = tokens.mean(axis=1)
    for minimum in (0.0, 0.05, 0.5):
        expected = ((fraction < minimum) | (fraction == 0)).astype(np.uint8)
        np.testing.assert_array_equal(token_background_flags(mask, min_foreground_fraction=minimum), expected)
    with pytest.raises(ValueError, match="pad first"):
        token_background_flags(mask[:5])
    with pytest.raises(ValueError, match="min_foreground_fraction"):
        token_background_flags(mask, min_foreground_fraction=2)


@pytest.mark.shared_data
def test_real_ct_mask_contains_the_organs(ts_volume) -> None:
    ct = reorient(ts_volume("ct_3mm"), "RPI")
    seg = reorient(ts_volume("seg_3mm"), "RPI").array  # 30 slices of organ labels
    # seg_3mm's affine puts it on the CT's 30 *inferior* slices, but its content (liver at soft-tissue HU,
    # lungs at air HU) matches the 30 *superior* ones; align by content so the test holds either way.
    n = seg.shape[0]
    offset = max((0, ct.shape[0] - n), key=lambda o: float(np.mean(ct.array[o : o + n][seg == 5] > -100)))
    mask = foreground_mask(ct, "ct")
    assert 0.3 < mask.mean() < 0.9
    organs = seg > 0
    overlap = mask[offset : offset + n][organs].mean()
    assert overlap > 0.995, f"only {overlap:.1%} of organ voxels are inside the body mask"
    lungs = (seg >= 10) & (seg <= 14)
    assert mask[offset : offset + n][lungs].all()  # air inside the body is filled
    outside = ~mask & (ct.array > -500)  # tissue-like voxels left out: only the table, below the body
    assert (ct.array[~mask] <= -500).mean() > 0.95
    assert np.argwhere(outside)[:, 1].min() > np.argwhere(mask)[:, 1].mean()  # RPI: rows grow posterior
