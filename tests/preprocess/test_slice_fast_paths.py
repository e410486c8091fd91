"""The slice renderer's fast paths give the display rule's bytes exactly.

Windowing 8- and 16-bit integers by table look-up equals :func:`ctlens.preprocess.windows.to_display_uint8` (the
one grey-level rule) for every value, window, storage order and memory layout; blending a uint8 heatmap and an ROI
outline by table equals the float32 rule, written out again here as it stood before the fast path; and a slice PNG
decodes to exactly those pixels for a volume stored in any axis order.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from ctlens.api.slice_png import render_slice
from ctlens.core.volume import Volume
from ctlens.preprocess import slice_render
from ctlens.preprocess.display import display_array
from ctlens.preprocess.orientation import reorient
from ctlens.preprocess.slice_render import HEAT_LUT, ROI_COLOUR, compose, render_plane, window_pixels
from ctlens.preprocess.windows import WINDOWS, to_display_uint8, window_limits

LIMITS = [window_limits(w) for w in WINDOWS] + [(3.0, 3.0), (-5.5, 7.25), (0.0, 1e9), (-40000.0, 40000.0)]


def float_rule(grey: np.ndarray, heatmap: np.ndarray | None, roi: np.ndarray | None, width: int = 1) -> np.ndarray:
    """The blend as the float32 rule states it (inferno ramp, alpha 0.65 x value, nothing under 5 %, ROI edge)."""
    if heatmap is None and roi is None:
        return grey
    rgb = grey.astype(np.float32) if grey.ndim == 3 else np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
    if heatmap is not None:
        h = heatmap.astype(np.float32) / 255.0
        alpha = (h * 0.65)[..., None]
        alpha[h < 0.05] = 0.0
        rgb = rgb * (1 - alpha) + HEAT_LUT[np.round(h * 255).astype(np.uint8)] * alpha
    if roi is not None:
        mask = roi > 0
        rgb[mask & ~ndimage.binary_erosion(mask, iterations=width)] = ROI_COLOUR
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int8, np.uint8])
def test_window_table_equals_the_grey_level_rule_for_every_value(dtype) -> None:
    info = np.iinfo(dtype)
    every = np.arange(info.min, info.max + 1).astype(dtype)
    side = int(np.ceil(np.sqrt(every.size)))
    grid = np.resize(every, side * side).reshape(side, side)  # >= 4096 values: the table path
    for lo, hi in LIMITS:
        assert np.array_equal(window_pixels(grid, (lo, hi)), to_display_uint8(grid, lo, hi)), (dtype, lo, hi)
        view = grid[::-2, 1::3]
        assert np.array_equal(window_pixels(view, (lo, hi)), to_display_uint8(view, lo, hi))


def test_window_of_other_dtypes_and_byte_orders_follows_the_rule() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(-3000, 3000, size=(80, 90))
    for array in (values.astype(">i2"), values.astype(np.int32), values.astype(np.float32), values / 7.0):
        for name in ("lung", "bone", "auto"):
            lo, hi = window_limits("soft_tissue" if name == "auto" else name)
            assert np.array_equal(window_pixels(array, name, "CT"), to_display_uint8(array, lo, hi))
    with pytest.raises(ValueError, match="finite"):
        window_pixels(values.astype(np.int16), (1.0, float("nan")))


@pytest.mark.parametrize("shape", [(64, 80), (64, 80, 3), (1, 1), (1, 9), (7, 1), (2, 2, 3)])
@pytest.mark.parametrize("width", [1, 2, 3])
def test_blend_equals_the_float_rule(shape, width) -> None:
    rng = np.random.default_rng(width * 100 + len(shape))
    grey = rng.integers(0, 256, size=shape, dtype=np.uint8)
    heat = rng.integers(0, 256, size=shape[:2], dtype=np.uint8)
    heat.reshape(-1)[: heat.size // 2] = rng.integers(0, 14, size=heat.size // 2)  # around the 5 % threshold
    roi = (rng.random(shape[:2]) > 0.3).astype(np.uint8)
    roi[:, 0] = 1  # touches the image's edge
    faint = heat % 13  # every value under the 5 % at which the rule starts drawing, and the first one drawn
    cases = [(heat, None), (None, roi), (heat, roi), (None, np.zeros_like(roi)), (faint, roi), (faint + 1, None)]
    for h, r in cases:
        got = compose(grey, h, r, width)
        assert got.dtype == np.uint8
        assert np.array_equal(got, float_rule(grey, h, r, width)), (shape, width, h is None, r is None)


@pytest.mark.parametrize("seed", range(12))
def test_blend_of_findings_anywhere_equals_the_float_rule(seed) -> None:
    """Heatmaps and ROIs covering part of the slice (the box paths): blobs in the middle, at an edge or a corner,
    single pixels, several apart, and ones covering most of the slice; grey or RGB; outline widths 1..3."""
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(1, 70)), int(rng.integers(1, 70))
    shape = (height, width) if seed % 3 else (height, width, 3)
    grey = rng.integers(0, 256, size=shape, dtype=np.uint8)
    heat = rng.integers(0, 13, size=(height, width), dtype=np.uint8)  # under the 5 %: draws nothing
    roi = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        r0, c0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        r1, c1 = r0 + int(rng.integers(1, height + 1)), c0 + int(rng.integers(1, width + 1))
        heat[r0:r1, c0:c1] = rng.integers(0, 256, size=heat[r0:r1, c0:c1].shape)
        roi[rng.integers(0, height) :][: int(rng.integers(1, 9)), c0:c1] = 1
    for edge in (0, -1):  # findings touching the image's edges
        if rng.random() < 0.5:
            heat[edge, :] = 255
            roi[:, edge] = 1
    for w in (1, 2, 3):
        for h, r in ((heat, None), (None, roi), (heat, roi)):
            assert np.array_equal(compose(grey, h, r, w), float_rule(grey, h, r, w)), (seed, w, h is None, r is None)


def test_blend_of_every_grey_and_heat_pair_equals_the_float_rule() -> None:
    grey, heat = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    assert np.array_equal(compose(grey, heat), float_rule(grey, heat, None))


def _asymmetric_volume() -> tuple[Volume, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[:5, :40, :56]
    hu = (-1000 + 30 * x + 11 * y - 200 * z + rng.normal(0, 40, x.shape)).astype(np.int16)
    heat = (np.clip((x - 20) * 9, 0, 255) * (y > 10)).astype(np.uint8)
    roi = ((x - 30) ** 2 + (y - 20) ** 2 < 100).astype(np.uint8)
    return Volume(hu, spacing=(3.0, 0.8, 0.8)), heat, roi


@pytest.mark.parametrize("order", ["LPS", "RAS", "PRS", "IRP", "SLA"])
def test_slice_png_decodes_to_the_display_rule_in_every_storage_order(order) -> None:
    base, heat, roi = _asymmetric_volume()
    stored = reorient(base, order)
    # heat / ROI on the stored grid: the same reorientation as the volume
    heat_s = reorient(base.with_array(heat), order).array
    roi_s = reorient(base.with_array(roi), order).array
    show = display_array(stored)
    heat_d, roi_d = display_array(stored, heat_s), display_array(stored, roi_s)
    for k, window, overlay in itertools.product(range(show.shape[0]), ("lung", "auto", "bone"), ("none", "both")):
        png = render_slice(stored, k, window=window, overlay=overlay, heatmap=heat_s, roi=roi_s)
        got = np.asarray(Image.open(io.BytesIO(png)))
        lo, hi = window_limits("soft_tissue" if window == "auto" else window)
        grey = to_display_uint8(show[k], lo, hi)
        want = grey if overlay == "none" else float_rule(grey, heat_d[k], roi_d[k])
        assert np.array_equal(got, want), (order, k, window, overlay)
        assert np.array_equal(
            got,
            render_plane(
                stored,
                k,
                window=window,
                heatmap=None if overlay == "none" else heat_s,
                roi=None if overlay == "none" else roi_s,
            ),
        )


def test_float_heatmaps_keep_the_float_rule() -> None:
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, size=(30, 20), dtype=np.uint8)
    heat = rng.random((30, 20)).astype(np.float32)
    heat[0, 0] = np.nan
    got = slice_render.compose(grey, heat)
    assert np.array_equal(got, slice_render._compose_float(grey, heat, None))
