"""The display rule (ctlens.preprocess.display) and the one slice renderer (ctlens.preprocess.slice_render).

Every storage order of the same patient gives the same display array and geometry (checked against SimpleITK's
DICOMOrient), an asymmetric phantom whose markers are placed in LPS millimetres shows anterior at the top and the
patient's left on the image's right in every order and plane, oblique volumes are labelled, and a volume already
in display order is returned without a copy.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.preprocess.display import (
    cut,
    display_array,
    oblique_degrees,
    orientation_note,
    pixel_spacing,
    slice_label,
    to_display,
)
from ctlens.preprocess.orientation import axcodes, reorient
from ctlens.preprocess.slice_render import render_plane, square_size, window_pixels

ORDERS = ["".join(p) for p in itertools.product("LR", "PA", "SI")]
ORDERS = [
    "".join(letters[i] for i in perm) for letters in ORDERS for perm in itertools.permutations(range(3))
]  # all 48 NIfTI-order codes
MARK_LEFT = (60.0, 0.0, 6.0)  # LPS mm: +x = patient left, low slices
MARK_FRONT = (0.0, -40.0, 21.0)  # LPS mm: -y = anterior, middle slices
MARK_TOP = (0.0, 0.0, 33.0)  # LPS mm: +z = superior, the last slices


def phantom(spacing=(3.0, 2.0, 1.5), shape=(14, 60, 80)) -> Volume:
    """A body with three bright markers at known LPS positions (left, anterior, superior), stored S, P, L."""
    nz, ny, nx = shape
    origin = (-(nx - 1) * spacing[2] / 2, -(ny - 1) * spacing[1] / 2, 0.0)
    v = Volume(np.full(shape, -1000, np.int16), spacing=spacing, origin=origin)
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    lps = v.world(np.stack([z, y, x], axis=-1).reshape(-1, 3)).reshape(*shape, 3)
    body = (lps[..., 0] / 70) ** 2 + (lps[..., 1] / 50) ** 2 <= 1
    v.array[body] = 40
    for centre, radius in ((MARK_LEFT, 6.0), (MARK_FRONT, 4.0), (MARK_TOP, 5.0)):
        v.array[np.linalg.norm(lps - np.asarray(centre), axis=-1) <= radius] = 1500
    return v


def _markers(pixels: np.ndarray) -> list[tuple[float, float]]:
    """Centroids (row, column as fractions of the image) of the bright markers, top to bottom."""
    from scipy import ndimage

    labels, n = ndimage.label(pixels >= 250)
    centres = ndimage.center_of_mass(pixels >= 250, labels, range(1, n + 1))
    return sorted((r / pixels.shape[0], c / pixels.shape[1]) for r, c in centres)


@pytest.mark.parametrize("order", ORDERS)
def test_every_storage_order_gives_the_same_display_volume(order: str) -> None:
    v = phantom()
    stored = reorient(v, order)
    assert "".join(axcodes(stored)[::-1]) == order
    d = to_display(stored)
    assert axcodes(d) == ("S", "P", "L")
    assert np.array_equal(d.array, v.array) and d.array.flags.c_contiguous
    assert np.allclose(d.affine, v.affine) and d.spacing == v.spacing
    assert np.array_equal(display_array(stored), v.array) and np.shares_memory(display_array(stored), stored.array)
    view = to_display(stored, contiguous=False)
    assert np.shares_memory(view.array, stored.array) and np.allclose(view.affine, v.affine)


@pytest.mark.parametrize("order", ["RAS", "LPS", "LAS", "LPI", "PRS", "SRA", "ASL", "IRP", "RIA"])
def test_display_matches_simpleitk_dicomorient(order: str) -> None:
    """ITK's own reorientation of the same image (to axes pointing L, P, S) gives the display array and geometry."""
    sitk = pytest.importorskip("SimpleITK")
    stored = reorient(phantom(), order)
    image = sitk.GetImageFromArray(stored.array)
    spacing, origin, direction = stored.itk_geometry()
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    oriented = sitk.DICOMOrient(image, "LPS")
    d = to_display(stored)
    assert np.array_equal(sitk.GetArrayFromImage(oriented), d.array)
    assert np.allclose(oriented.GetOrigin(), d.origin)
    assert np.allclose(oriented.GetSpacing(), d.spacing[::-1])
    assert np.allclose(np.reshape(oriented.GetDirection(), (3, 3)), d.direction[:, ::-1])


@pytest.mark.parametrize("order", ORDERS)
def test_phantom_markers_land_where_the_convention_says_in_every_plane(order: str) -> None:
    stored = reorient(phantom(), order)
    d = to_display(stored)

    def shown(mark: tuple[float, float, float], plane: str) -> list[tuple[float, float]]:
        k = int(round(d.index(mark)[("axial", "coronal", "sagittal").index(plane)]))
        return _markers(window_pixels(cut(d.array, k, plane), "soft_tissue"))

    [(row, col)] = shown(MARK_LEFT, "axial")
    assert col > 0.75 and 0.4 < row < 0.6, f"patient left is not on the image's right: {row, col}"
    [(row, col)] = shown(MARK_FRONT, "axial")
    assert row < 0.25 and 0.4 < col < 0.6, f"anterior is not at the top: {row, col}"
    top, left = shown(MARK_LEFT, "coronal")  # the coronal plane through y = 0 holds the superior and left markers
    assert top[0] < 0.2 and 0.4 < top[1] < 0.6 and left[0] > 0.7 and left[1] > 0.75, (top, left)
    top, front = shown(MARK_TOP, "sagittal")  # the sagittal plane through x = 0: superior and anterior markers
    assert top[0] < 0.2 and 0.4 < top[1] < 0.6 and front[1] < 0.25, (top, front)
    z = int(round(d.index(MARK_LEFT)[0]))
    assert np.array_equal(
        render_plane(stored, z, window="soft_tissue"), render_plane(phantom(), z, window="soft_tissue")
    )


def test_display_volume_comes_back_without_a_copy() -> None:
    v = phantom()
    assert to_display(v) is v
    assert np.shares_memory(display_array(v), v.array)
    memmapped = Volume(np.lib.stride_tricks.as_strided(v.array), spacing=v.spacing)
    assert to_display(memmapped).array is memmapped.array


@pytest.mark.parametrize("degrees", [3.0, 20.0])
def test_oblique_volume_is_labelled_drawn_upright_and_keeps_world_positions(degrees: float) -> None:
    t = np.radians(degrees)
    about_x = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    v = phantom()
    oblique = Volume(v.array, spacing=v.spacing, origin=v.origin, direction=about_x @ v.direction)
    for order in ("RAS", "PIR", "LPS"):
        stored = reorient(oblique, order)
        d = to_display(stored)
        assert round(oblique_degrees(stored), 6) == degrees
        assert d.meta["display_oblique_deg"] == round(degrees, 2)
        assert any("oblique" in w for w in d.meta["warnings"]) and "OBLIQUE" in orientation_note(d)
        assert "display_oblique_deg" not in stored.meta  # the caller's volume is untouched
        assert np.array_equal(d.array, v.array)  # drawn along the nearest axes: anatomy upright, no resampling
        assert np.allclose(d.world((3, 4, 5)), stored.world(stored.index(d.world((3, 4, 5)))))
        assert to_display(d) is d and len(to_display(d).meta["warnings"]) == len(d.meta["warnings"])
    noise = Volume(v.array, direction=v.direction + 1e-7)
    assert oblique_degrees(noise) == 0.0 and "display_oblique_deg" not in to_display(noise).meta


def test_aspect_and_numbering() -> None:
    v = phantom(spacing=(5.0, 0.8, 0.8), shape=(10, 40, 40))
    assert pixel_spacing(reorient(v, "RAS"), "coronal") == (5.0, 0.8)
    assert render_plane(v, 3, plane="coronal").shape == square_size((10, 40), (5.0, 0.8)) == (62, 40)
    assert render_plane(v, 3).shape == (40, 40)  # square pixels are never resampled
    assert slice_label(0, 10) == "slice 1 of 10" and slice_label(9, 10) == "slice 10 of 10"
    with pytest.raises(IndexError, match="slice 11 does not exist"):
        cut(v.array, 10)
    with pytest.raises(ValueError, match="unknown plane"):
        cut(v.array, 0, "oblique")
