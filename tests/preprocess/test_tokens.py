"""Tokenization and its exact inverse."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.preprocess import grid_shape, tokenize, untokenize

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64, np.bool_, np.complex64, np.uint64])
def test_round_trip_is_bit_exact(dtype) -> None:
    arr = (RNG.normal(size=(8, 32, 48)) * 1000).astype(dtype)
    if np.dtype(dtype).kind == "f":
        arr.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).tiny]
    tokens, coords = tokenize(arr)
    assert tokens.shape == (2 * 2 * 3, 4 * 16 * 16) and tokens.dtype == arr.dtype
    assert coords.shape == (12, 3) and coords.dtype == np.int64
    back = untokenize(tokens, coords, arr.shape)
    assert back.dtype == arr.dtype
    assert back.tobytes() == arr.tobytes()


def test_token_layout_matches_the_grid() -> None:
    arr = RNG.integers(0, 1000, (8, 32, 48))
    patch = (4, 16, 16)
    tokens, coords = tokenize(arr, patch)
    assert coords.tolist() == np.argwhere(np.ones(grid_shape(arr.shape, patch), bool)).tolist()  # C order z, y, x
    for token, (z, y, x) in zip(tokens, coords, strict=True):
        block = arr[z * 4 : (z + 1) * 4, y * 16 : (y + 1) * 16, x * 16 : (x + 1) * 16]
        np.testing.assert_array_equal(token, block.reshape(-1))


def test_subset_in_any_order_fills_missing() -> None:
    arr = RNG.integers(1, 100, (4, 8, 8)).astype(np.int32)
    tokens, coords = tokenize(arr, (2, 4, 4))
    keep = RNG.permutation(len(tokens))[:5]
    back = untokenize(tokens[keep], coords[keep], arr.shape, (2, 4, 4), fill_value=-1)
    expected = np.full_like(arr, -1)
    for z, y, x in coords[keep]:
        sl = (slice(z * 2, z * 2 + 2), slice(y * 4, y * 4 + 4), slice(x * 4, x * 4 + 4))
        expected[sl] = arr[sl]
    np.testing.assert_array_equal(back, expected)
    assert not untokenize(tokens[:0], coords[:0], arr.shape, (2, 4, 4)).any()


def test_errors_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="pad first"):
        tokenize(np.zeros((5, 16, 16)))
    with pytest.raises(ValueError, match="3-D"):
        tokenize(np.zeros((16, 16)))
    tokens, coords = tokenize(np.zeros((4, 16, 16)))
    with pytest.raises(ValueError, match="outside"):
        untokenize(tokens, coords + 1, (4, 16, 16))
    with pytest.raises(ValueError, match="repeat"):
        untokenize(np.vstack([tokens, tokens]), np.vstack([coords, coords]), (4, 16, 16))
    with pytest.raises(ValueError, match="tokens must be"):
        untokenize(tokens[:, :10], coords, (4, 16, 16))
