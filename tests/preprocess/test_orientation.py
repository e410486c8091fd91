"""Orientation codes, exact reorientation and slice-axis detection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.preprocess import axcodes, permute_axes, reorient, slice_axis, slice_plane

RNG = np.random.default_rng(0)
ALL_TARGETS = [
    "".join(letters)
    for axes in itertools.permutations(range(3))
    for letters in itertools.product(*[("LR", "PA", "SI")[a] for a in axes])
]


def _volume(direction: np.ndarray, shape=(3, 4, 5), spacing=(2.5, 0.7, 0.9)) -> Volume:
    return Volume(
        RNG.integers(-1000, 2000, size=shape).astype(np.int16),
        spacing=spacing,
        origin=(-10.0, 20.0, 35.0),
        direction=direction,
    )


def _assert_same_world_values(original: Volume, moved: Volume, n: int = 30) -> None:
    """Every checked voxel of ``moved`` sits where the same value sits in ``original``."""
    assert moved.array.size == original.array.size
    idx = np.stack([RNG.integers(0, s, n) for s in moved.shape], axis=1)
    idx = np.vstack([idx, [[0, 0, 0], [s - 1 for s in moved.shape]]])
    back = original.index(moved.world(idx))
    np.testing.assert_allclose(back, np.round(back), atol=1e-6)
    back = np.round(back).astype(int)
    np.testing.assert_array_equal(moved.array[tuple(idx.T)], original.array[tuple(back.T)])


def test_axcodes_of_common_layouts() -> None:
    assert axcodes(Volume(np.zeros((2, 2, 2)))) == ("S", "P", "L")  # axial DICOM, LPS-stored
    ras = np.diag([-1.0, -1.0, 1.0])[:, ::-1]  # NIfTI RAS file read as [z, y, x]
    assert axcodes(Volume(np.zeros((2, 2, 2)), direction=ras)) == ("S", "A", "R")
    coronal = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # slices -> A, rows -> I, cols -> L
    assert axcodes(Volume(np.zeros((2, 2, 2)), direction=coronal)) == ("A", "I", "L")


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_reorient_reaches_every_target_and_keeps_world_positions(target: str) -> None:
    src = _volume(np.diag([-1.0, 1.0, -1.0])[:, [1, 2, 0]])
    out = reorient(src, target)
    assert "".join(axcodes(out)[::-1]) == target  # target is in NIfTI (x, y, z) order
    assert sorted(out.shape) == sorted(src.shape)
    assert out.array.flags.c_contiguous
    _assert_same_world_values(src, out)
    np.testing.assert_allclose(np.abs(np.linalg.det(out.direction)), 1.0)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_reorient_to_rpi_from_any_storage_order(order: tuple[int, int, int]) -> None:
    direction = (np.eye(3)[:, ::-1] * RNG.choice([-1.0, 1.0], size=3))[:, list(order)]
    src = _volume(direction)
    out = reorient(src, "RPI")
    assert axcodes(out) == ("I", "P", "R")
    _assert_same_world_values(src, out)
    np.testing.assert_allclose(out.world((0, 0, 0)), src.world(src.index(out.world((0, 0, 0)))))


def test_reorient_oblique_volume_is_exact() -> None:
    angle = np.deg2rad(20.0)
    c, s = np.cos(angle), np.sin(angle)
    tilt = np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])  # rotate about L/R (gantry-tilt like)
    src = _volume(tilt @ np.eye(3)[:, ::-1])
    out = reorient(src, "RPI")
    assert axcodes(out) == ("I", "P", "R")
    _assert_same_world_values(src, out)


def test_reorient_noop_keeps_geometry() -> None:
    src = reorient(_volume(np.eye(3)[:, ::-1]), "RPI")
    again = reorient(src, "RPI")
    np.testing.assert_array_equal(again.array, src.array)
    assert again.spacing == src.spacing
    np.testing.assert_allclose(again.origin, src.origin)
    np.testing.assert_allclose(again.direction, src.direction)


@pytest.mark.parametrize("bad", ["RPX", "RRI", "RP", "LLS", ""])
def test_reorient_rejects_bad_targets(bad: str) -> None:
    with pytest.raises(ValueError, match="orientation codes"):
        reorient(_volume(np.eye(3)[:, ::-1]), bad)


def test_permute_axes_keeps_world_positions_and_validates() -> None:
    src = _volume(np.eye(3)[:, ::-1])
    out = permute_axes(src, (1, 2, 0), flip=(False, True, True))
    assert out.spacing == (src.spacing[1], src.spacing[2], src.spacing[0])
    _assert_same_world_values(src, out)
    with pytest.raises(ValueError):
        permute_axes(src, (0, 0, 1))


def test_slice_axis_largest_spacing_and_ties() -> None:
    assert slice_axis(Volume(np.zeros((2, 2, 2)), spacing=(0.7, 5.0, 0.7))) == 1
    assert slice_axis(Volume(np.zeros((2, 2, 2)), spacing=(3.0, 3.0, 3.0))) == 0  # axial: axis 0 is S
    rpi_like = np.array([[0.0, 0, -1], [0, 1, 0], [-1, 0, 0]])  # axes (I, P, R)
    assert slice_axis(Volume(np.zeros((2, 2, 2)), direction=rpi_like)) == 0
    axes_lps = np.eye(3)  # array axes point (L, P, S): the S axis is the last one
    assert slice_axis(Volume(np.zeros((2, 2, 2)), direction=axes_lps)) == 2  # isotropic tie -> the S axis
    # a tie between two thick axes goes to the one closer to S/I
    assert slice_axis(Volume(np.zeros((2, 2, 2)), spacing=(0.5, 4.0, 4.0), direction=axes_lps)) == 2
    assert slice_axis(Volume(np.zeros((2, 2, 2)), spacing=(4.0, 4.0, 0.5), direction=axes_lps)) in (0, 1)


def test_slice_plane_names() -> None:
    assert slice_plane(Volume(np.zeros((2, 2, 2)), spacing=(5.0, 1.0, 1.0))) == "axial"
    assert slice_plane(Volume(np.zeros((2, 2, 2)), spacing=(1.0, 5.0, 1.0))) == "coronal"
    assert slice_plane(Volume(np.zeros((2, 2, 2)), spacing=(1.0, 1.0, 5.0))) == "sagittal"
    sagittal_series = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # slices along L (DICOM sagittal)
    assert slice_plane(Volume(np.zeros((2, 2, 2)), spacing=(4.0, 0.5, 0.5), direction=sagittal_series)) == "sagittal"


@pytest.mark.shared_data
def test_real_ct_reorients_exactly(ts_volume) -> None:
    ct = ts_volume("ct_3mm")
    assert axcodes(ct) == ("S", "A", "R")  # RAS NIfTI
    out = reorient(ct, "RPI")
    assert axcodes(out) == ("I", "P", "R")
    _assert_same_world_values(ct, out, n=200)
    np.testing.assert_array_equal(out.array, ct.array[::-1, ::-1, :])  # flips of S->I and A->P only
