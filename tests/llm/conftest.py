"""Synthetic chest-like volumes for the llm tests."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.core.volume import Volume


def chest_phantom(n_slices: int = 24, size: int = 128, nodule: tuple[int, int, int, int] | None = None) -> Volume:
    """A body ellipse (40 HU) with two lungs (-850 HU) on every slice; ``nodule`` = (z0, z1, cy, cx) adds a
    12-voxel soft-tissue blob in the right lung on slices z0..z1-1."""
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    body = ((yy - c) / (0.36 * size)) ** 2 + ((xx - c) / (0.45 * size)) ** 2 < 1
    lung = ((yy - c) / (0.22 * size)) ** 2 + ((np.abs(xx - c) - 0.18 * size) / (0.13 * size)) ** 2 < 1
    plane = np.where(body, np.where(lung, -850, 40), -1000).astype(np.int16)
    arr = np.repeat(plane[None], n_slices, axis=0)
    if nodule is not None:
        z0, z1, cy, cx = nodule
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 < 6**2
        arr[z0:z1][:, blob] = 30
    return Volume(arr, spacing=(2.5, 0.8, 0.8), meta={"kernel": "B30f", "manufacturer": "ACME"})


@pytest.fixture
def phantom() -> Volume:
    return chest_phantom()


@pytest.fixture
def make_phantom():
    """The :func:`chest_phantom` factory (test modules cannot import conftest by name)."""
    return chest_phantom


def png_chunk_types(png: bytes) -> list[str]:
    """Chunk types of a PNG, read from the bytes (no Pillow)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        out.append(png[pos + 4 : pos + 8].decode("ascii"))
        pos += 12 + length
    return out


@pytest.fixture
def png_chunks():
    """:func:`png_chunk_types` for test modules."""
    return png_chunk_types
