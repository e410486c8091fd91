"""ctlens.core.volume: geometry of a Volume (affine, world/index, ITK order) for any direction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from ctlens.core.volume import Volume


def test_affine_maps_index_to_lps_with_spacing_and_origin() -> None:
    v = Volume(np.zeros((4, 5, 6), np.int16), spacing=(2.5, 0.7, 0.8), origin=(10.0, -20.0, 30.0))
    # default direction: z index -> S (LPS z), y index -> P (LPS y), x index -> L (LPS x)
    assert np.allclose(v.world((1, 0, 0)), (10.0, -20.0, 32.5))
    assert np.allclose(v.world((0, 1, 0)), (10.0, -19.3, 30.0))
    assert np.allclose(v.world((0, 0, 1)), (10.8, -20.0, 30.0))


@settings(max_examples=40, deadline=None)
@given(
    angles=st.tuples(*[st.floats(-180, 180)] * 3),
    spacing=st.tuples(*[st.floats(0.1, 10.0)] * 3),
    origin=st.tuples(*[st.floats(-500, 500)] * 3),
)
def test_index_inverts_world_for_any_rotation(angles, spacing, origin) -> None:
    direction = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    v = Volume(np.zeros((3, 3, 3), np.int16), spacing=spacing, origin=origin, direction=direction)
    idx = np.array([[0.0, 0.0, 0.0], [2.0, 1.5, 0.25], [7.0, -3.0, 11.0]])
    assert np.allclose(v.index(v.world(idx)), idx, atol=1e-6)


def test_itk_geometry_round_trips_through_from_itk_geometry() -> None:
    direction = Rotation.from_euler("z", 30, degrees=True).as_matrix()[:, [2, 1, 0]]
    v = Volume(np.arange(24, dtype=np.int16).reshape(2, 3, 4), spacing=(3, 2, 1), origin=(1, 2, 3), direction=direction)
    spacing_xyz, origin, direction_xyz = v.itk_geometry()
    assert spacing_xyz == (1.0, 2.0, 3.0)
    back = Volume.from_itk_geometry(v.array, spacing_xyz, origin, direction_xyz)
    assert np.allclose(back.affine, v.affine)


def test_itk_geometry_agrees_with_simpleitk_physical_points() -> None:
    sitk = pytest.importorskip("SimpleITK")
    direction = Rotation.from_euler("xy", (12, -20), degrees=True).as_matrix()
    v = Volume(np.zeros((3, 4, 5), np.int16), spacing=(2.0, 0.5, 0.75), origin=(5, 6, 7), direction=direction)
    image = sitk.GetImageFromArray(v.array)
    spacing, origin, dir_xyz = v.itk_geometry()
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(dir_xyz)
    z, y, x = 2, 3, 4
    assert np.allclose(image.TransformIndexToPhysicalPoint((x, y, z)), v.world((z, y, x)))


@pytest.mark.parametrize("bad", [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0)])
def test_spacing_must_be_three_positive_numbers(bad) -> None:
    with pytest.raises(ValueError, match="spacing"):
        Volume(np.zeros((2, 2, 2)), spacing=bad)


def test_array_must_be_3d() -> None:
    with pytest.raises(ValueError, match="3-D"):
        Volume(np.zeros((2, 2)))


def test_with_array_copies_meta_and_keeps_geometry() -> None:
    v = Volume(np.zeros((2, 2, 2), np.int16), spacing=(3, 2, 1), meta={"kernel": "B40f"})
    w = v.with_array(np.ones((2, 2, 2), np.float32))
    w.meta["kernel"] = "changed"
    assert v.meta["kernel"] == "B40f"
    assert w.spacing == v.spacing and np.array_equal(w.affine, v.affine)
