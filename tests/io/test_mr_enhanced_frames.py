"""The Multi-frame Dimension rules of ctlens.io.enhanced_frames on every layout, without a peer (#23).

Volumes of 2 b-values x 3 directions, acquired direction by direction; the frames' DimensionIndexValues list the
dimensions in the orders vendors use (spatial first, spatial last, spatial between, no spatial item); every
layout must give back the acquisition order, from frames in any order.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydicom.dataset import Dataset

from ctlens.io.enhanced_frames import volume_dimension_key, volume_order_keys

STACK, IN_STACK, POSITION, B_VALUE, DIRECTION = 0x00209056, 0x00209057, 0x00200032, 0x00189087, 0x00189089


def header(pointers: tuple[int, ...]) -> Dataset:
    ds = Dataset()
    ds.DimensionIndexSequence = [Dataset() for _ in pointers]
    for item, pointer in zip(ds.DimensionIndexSequence, pointers, strict=True):
        item.DimensionIndexPointer = pointer
    return ds


ACQUIRED = [(b, g) for g in (1, 2, 3) for b in (1, 2)]
"""(b-value rank, direction number) per volume, in acquisition order: direction by direction."""


@pytest.mark.parametrize(
    "pointers",
    [
        (STACK, IN_STACK, B_VALUE, DIRECTION),  # Philips: spatial items first, the last item varies slowest
        (DIRECTION, B_VALUE, STACK, IN_STACK),  # Canon / Bruker: spatial items last, the first item varies slowest
        (STACK, POSITION, B_VALUE, DIRECTION),  # position indexed by ImagePositionPatient
    ],
    ids=["spatial-first", "spatial-last", "position-pointer"],
)
def test_volume_order_from_any_dimension_layout(pointers: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    volumes = []
    for b, g in ACQUIRED:
        frames = []
        for k in (1, 2, 3, 4):
            index = {STACK: 1, IN_STACK: k, POSITION: k, B_VALUE: b, DIRECTION: g}
            frames.append(tuple(index[p] for p in pointers))
        volumes.append([frames[i] for i in rng.permutation(len(frames))])
    for shuffled in itertools.islice(itertools.permutations(range(len(volumes))), 0, 720, 97):
        keys = volume_order_keys(header(pointers), [volumes[i] for i in shuffled])
        assert keys is not None
        order = sorted(range(len(shuffled)), key=lambda j: keys[j])
        assert [ACQUIRED[shuffled[j]] for j in order] == ACQUIRED


def test_without_pointers_the_last_varying_item_is_slowest_as_dcm2niix() -> None:
    """No usable DimensionIndexSequence: dcm2niix takes the first item as the spatial one."""
    volumes = [[(k, b, g) for k in (1, 2, 3)] for b, g in ACQUIRED]
    keys = volume_order_keys(Dataset(), volumes[::-1])
    assert keys is not None
    assert [ACQUIRED[::-1][j] for j in sorted(range(len(keys)), key=lambda j: keys[j])] == ACQUIRED


def test_unusable_values_give_no_order() -> None:
    assert volume_order_keys(header((STACK, IN_STACK)), []) is None
    assert volume_order_keys(header((STACK, IN_STACK)), [[(1, 1)], []]) is None
    assert volume_order_keys(header((STACK, IN_STACK)), [[(1, 1)], [(1, 1, 2)]]) is None


def test_volume_dimension_key_leaves_out_position_and_stack() -> None:
    h = header((STACK, IN_STACK, B_VALUE, DIRECTION))
    keys = {volume_dimension_key(h, [1, k, b, g]) for k in (1, 2, 3) for b, g in ACQUIRED}
    assert keys == {f"{b}.{g}" for b, g in ACQUIRED}
    assert volume_dimension_key(header((STACK, IN_STACK)), [1, 3]) is None
    assert volume_dimension_key(h, [1, 2, 3]) is None  # fewer values than items: no key
