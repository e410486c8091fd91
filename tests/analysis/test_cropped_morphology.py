"""The cropped (fast) in-plane morphology, box upsampling and counts equal their whole-image definitions.

The analysis computes closings, openings and hole filling inside boxes around the mask, upsamples only the
lungs' box and counts lung voxels on the working grid (speed, issue #15); the results must be exactly those of
the plain definitions, for masks touching the image edge, full and empty slices and anisotropic pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctlens.analysis.emphysema import kernel_normalized_density
from ctlens.analysis.grid import AnalysisGrid
from ctlens.analysis.morphology import PLANE4, closing_in_plane, fill_holes_in_plane, opening_in_plane


def _edt_full(mask: np.ndarray, sampling) -> np.ndarray:
    """Per slice distance of True pixels to the nearest False one on the whole slice (inf if none)."""
    out = np.zeros(mask.shape, np.float64)
    for z in range(mask.shape[0]):
        if mask[z].all():
            out[z] = np.inf
        elif mask[z].any():
            out[z] = ndimage.distance_transform_edt(mask[z], sampling=sampling)
    return out


def _masks(seed: int, shape=(7, 41, 57)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = ndimage.gaussian_filter(rng.normal(size=shape), (0, 2.5, 2.5)) > 0.15
    m[0] = False  # an empty slice
    m[1] = True  # a full slice
    m[2, :, :5] = True  # touching the image edge
    m[3] = False
    m[3, 10:20, 30:45] = True  # a small block with a hole
    m[3, 14:16, 36:38] = False
    yy, xx = np.mgrid[0 : shape[1], 0 : shape[2]]
    m[4] = ((yy - 14) ** 2 + (xx - 20) ** 2 <= 9) | ((yy - 22) ** 2 + (xx - 29) ** 2 <= 9)  # two disks, diagonal
    m[5] = False
    m[5, 12:30, 18:22] = True  # an L away from the edges
    m[5, 26:30, 18:40] = True
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sampling", [(1.0, 1.0), (0.7, 1.3)])
@pytest.mark.parametrize("radius", [1.5, 4.0, 9.0])
def test_closing_and_opening_equal_the_whole_slice_definition(seed, sampling, radius):
    m = _masks(seed)
    grown = _edt_full(~m, sampling) <= radius
    closing = _edt_full(grown, sampling) > radius
    core = _edt_full(m, sampling) > radius
    opening = (_edt_full(~core, sampling) <= radius) & m
    assert np.array_equal(closing_in_plane(m, radius, sampling), closing)
    assert np.array_equal(opening_in_plane(m, radius, sampling), opening)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fill_holes_equals_scipy(seed):
    m = _masks(seed)
    assert np.array_equal(fill_holes_in_plane(m), ndimage.binary_fill_holes(m, PLANE4))
    assert not fill_holes_in_plane(np.zeros((3, 5, 5), bool)).any()


@pytest.mark.parametrize("shape", [(12, 8, 8), (13, 9, 7), (5, 11, 10)])
@pytest.mark.parametrize("spacing", [(1.0, 0.625, 0.625), (0.8, 0.4, 0.7), (3.0, 1.3, 1.3)])
def test_box_upsampling_and_counts_match_the_full_copy(shape, spacing):
    g = AnalysisGrid.for_spacing(spacing, shape)
    rng = np.random.default_rng(sum(shape))
    lab = rng.integers(0, 3, g.shape).astype(np.uint8)
    full = np.repeat(np.repeat(np.repeat(lab, g.factors[0], 0), g.factors[1], 1), g.factors[2], 2)
    full = full[: shape[0], : shape[1], : shape[2]]
    assert np.array_equal(g.upsample(lab), full)
    assert g.input_counts(lab, 3).tolist() == np.bincount(full.ravel(), minlength=3).tolist()
    for _ in range(20):
        lo = [int(rng.integers(0, n)) for n in shape]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, shape, strict=True)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        assert np.array_equal(g.upsample_box(lab, box), full[box])


def test_density_from_a_slab_callable_equals_the_full_mask():
    rng = np.random.default_rng(3)
    hu = np.full((20, 48, 64), 40.0)
    hu[:, 8:40, 6:58] = -860.0
    hu += rng.normal(0.0, 55.0, hu.shape)
    lung = np.zeros(hu.shape, bool)
    lung[2:18, 12:36, 10:54] = True

    def slabs(z0, z1, reach):  # boxes as wide as the image: no cropping at all
        part = lung[z0:z1]
        return ((slice(0, hu.shape[1]), slice(0, hu.shape[2])), part) if part.any() else None

    a = kernel_normalized_density(hu, lung, (2.0, 0.7, 0.7), "B70f")
    b = kernel_normalized_density(hu, slabs, (2.0, 0.7, 0.7), "B70f")
    assert a == b and a[1]["filter_sigma_mm"] > 0
