"""Cut a 3-D array into non-overlapping patches ("tokens") and put them back, exactly.

Tokens are ordered C-style over the token grid ``(z, y, x)``; each token is one patch flattened
C-style ``(pz, py, px)`` -- NeuroVFM's ``"(d p1) (h p2) (w p3) -> (d h w) (p1 p2 p3)"``.

Example:
    >>> import numpy as np
    >>> arr = np.arange(8 * 32 * 32, dtype=np.int16).reshape(8, 32, 32)
    >>> tokens, coords = tokenize(arr)
    >>> tokens.shape, coords[:2].tolist()
    ((8, 1024), [[0, 0, 0], [0, 0, 1]])
    >>> bool(np.array_equal(untokenize(tokens, coords, arr.shape), arr))
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["grid_shape", "tokenize", "untokenize"]


def _patch(patch: Sequence[int]) -> tuple[int, int, int]:
    p = tuple(int(v) for v in patch)
    if len(p) != 3 or min(p) < 1:
        raise ValueError(f"patch must be three positive integers (z, y, x), got {patch!r}")
    return p  # type: ignore[return-value]


def grid_shape(shape: Sequence[int], patch: Sequence[int] = (4, 16, 16)) -> tuple[int, int, int]:
    """Token grid ``(Gz, Gy, Gx)`` of an array ``shape``; a clear ``ValueError`` when not divisible.

    Example:
        >>> grid_shape((8, 48, 64))
        (2, 3, 4)
    """
    p = _patch(patch)
    s = tuple(int(v) for v in shape)
    if len(s) != 3:
        raise ValueError(f"tokenization needs a 3-D array (z, y, x), got shape {s}")
    if any(n % q for n, q in zip(s, p, strict=True)):
        raise ValueError(
            f"array shape {s} is not divisible by the patch {p}; "
            "pad first with ctlens.preprocess.pad_to_multiple(array, multiple=patch)"
        )
    return tuple(n // q for n, q in zip(s, p, strict=True))  # type: ignore[return-value]


def tokenize(arr: np.ndarray, patch: Sequence[int] = (4, 16, 16)) -> tuple[np.ndarray, np.ndarray]:
    """Split ``arr`` ``[z, y, x]`` into ``tokens [N, pz*py*px]`` (same dtype) and ``coords [N, 3]`` (int64).

    ``coords`` are token-grid indices ``(z, y, x)``; the voxel at ``coords * patch`` is a token's first
    element. The shape must be divisible by ``patch`` (pad first, see :func:`grid_shape`).

    Example:
        >>> import numpy as np
        >>> tokens, coords = tokenize(np.arange(16).reshape(2, 2, 4), patch=(1, 2, 2))
        >>> tokens[1].tolist(), coords[1].tolist()
        ([2, 3, 6, 7], [0, 0, 1])
    """
    arr = np.asarray(arr)
    gz, gy, gx = grid_shape(arr.shape, patch)
    pz, py, px = _patch(patch)
    blocks = arr.reshape(gz, pz, gy, py, gx, px).transpose(0, 2, 4, 1, 3, 5)
    tokens = blocks.reshape(gz * gy * gx, pz * py * px)
    coords = np.indices((gz, gy, gx), dtype=np.int64).reshape(3, -1).T
    return tokens, np.ascontiguousarray(coords)


def untokenize(
    tokens: np.ndarray,
    coords: np.ndarray,
    shape: Sequence[int],
    patch: Sequence[int] = (4, 16, 16),
    fill_value: float = 0,
) -> np.ndarray:
    """Inverse of :func:`tokenize`: rebuild the ``shape`` array (dtype of ``tokens``), bit-exact.

    ``tokens`` may be any subset of the tokens (e.g. foreground only) in any order; voxels of missing
    tokens are ``fill_value``. Coordinates outside the grid or repeated raise ``ValueError``.

    Example:
        >>> import numpy as np
        >>> out = untokenize(np.array([[1, 2, 3, 4]]), np.array([[0, 0, 1]]), (1, 2, 4), patch=(1, 2, 2))
        >>> out.tolist()
        [[[0, 0, 1, 2], [0, 0, 3, 4]]]
    """
    gz, gy, gx = grid_shape(shape, patch)
    pz, py, px = _patch(patch)
    tokens = np.asarray(tokens)
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
    if tokens.ndim != 2 or tokens.shape != (len(coords), pz * py * px):
        raise ValueError(f"tokens must be [N, {pz * py * px}] with N = len(coords) = {len(coords)}, got {tokens.shape}")
    if len(coords) and ((coords.min(0) < 0).any() or (coords.max(0) >= (gz, gy, gx)).any()):
        raise ValueError(f"token coords fall outside the token grid {(gz, gy, gx)} of shape {tuple(shape)}")
    flat = np.ravel_multi_index(coords.T, (gz, gy, gx)) if len(coords) else np.empty(0, np.int64)
    if len(np.unique(flat)) != len(flat):
        raise ValueError("token coords repeat; each token position may appear once")
    out = np.full((gz, pz, gy, py, gx, px), fill_value, dtype=tokens.dtype)
    out[coords[:, 0], :, coords[:, 1], :, coords[:, 2], :] = tokens.reshape(-1, pz, py, px)
    return out.reshape(tuple(int(s) for s in shape))
