"""Centre padding / cropping to a multiple of the patch, with the origin kept consistent."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.preprocess import crop_to_multiple, crop_widths, pad_to_multiple, pad_widths


def _volume(shape=(5, 21, 30), modality="CT") -> Volume:
    direction = np.array([[0.0, 0, -1], [0, 1, 0], [-1, 0, 0]])  # (I, P, R)
    arr = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
    return Volume(arr, spacing=(4.0, 1.0, 0.5), origin=(3.0, -2.0, 50.0), direction=direction, modality=modality)


def _check_world_values(small: Volume, big: Volume) -> None:
    """Each voxel of ``small`` appears in ``big`` at the same world position."""
    idx = np.indices(small.shape).reshape(3, -1).T
    where = np.round(big.index(small.world(idx))).astype(int)
    np.testing.assert_allclose(big.index(small.world(idx)), where, atol=1e-9)
    np.testing.assert_array_equal(big.array[tuple(where.T)], small.array.reshape(-1))


def test_pad_volume_centres_and_moves_origin() -> None:
    v = _volume()
    p = pad_to_multiple(v, (4, 16, 16))
    assert p.shape == (8, 32, 32)
    assert pad_widths(v.shape, (4, 16, 16)) == ((1, 2), (5, 6), (1, 1))
    _check_world_values(v, p)
    assert p.array[0].max() == -1024 and p.array[-2:].max() == -1024  # CT air
    assert pad_to_multiple(_volume(modality="MR"), (4, 16, 16)).array.min() == 0


def test_crop_volume_centres_and_moves_origin() -> None:
    v = _volume()
    c = crop_to_multiple(v, (4, 16, 16))
    assert c.shape == (4, 16, 16)
    assert crop_widths(v.shape, (4, 16, 16)) == ((0, 1), (2, 3), (7, 7))
    _check_world_values(c, v)
    assert not np.shares_memory(c.array, v.array)


def test_arrays_and_values() -> None:
    arr = np.ones((3, 17, 16), np.float32)
    padded = pad_to_multiple(arr, (4, 16, 16), value=-5)
    assert isinstance(padded, np.ndarray) and padded.shape == (4, 32, 16)
    assert padded[0, 7:24].min() == 1 and padded[-1].max() == -5  # odd totals: the extra voxel goes after
    assert padded[0, :7].max() == -5 and padded[0, 24:].max() == -5
    assert pad_to_multiple(np.zeros((4, 16, 16), bool), (4, 16, 16)).shape == (4, 16, 16)
    assert crop_to_multiple(arr, 1).shape == arr.shape
    assert pad_to_multiple(np.zeros((1, 1, 1), np.uint8), 2).shape == (2, 2, 2)


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="pad instead"):
        crop_to_multiple(np.zeros((3, 32, 32)), (4, 16, 16))
    with pytest.raises(ValueError, match="does not fit"):
        pad_to_multiple(np.zeros((3, 16, 16), np.uint8), (4, 16, 16), value=-1024)
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(np.zeros((3, 16, 16)), (4, 16))


def test_masks_pad_with_zero_even_on_a_ct_volume() -> None:
    mask = _volume().with_array(np.ones((5, 21, 30), bool))  # modality stays "CT"
    assert not pad_to_multiple(mask, (4, 16, 16)).array[0].any()
    labels = _volume().with_array(np.ones((5, 21, 30), np.uint8))
    assert pad_to_multiple(labels, (4, 16, 16)).array.min() == 0
