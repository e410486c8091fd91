"""Packing tiles into images: no wasted cost step at the edges, and the cheapest mix of image sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.llm import token_costs as tk
from ctlens.llm.labelled_montage import BAND_PX, GUTTER_PX, montage_size
from ctlens.llm.payload import build_payload
from ctlens.llm.plan import Planner


def _chest(n: int = 30) -> Volume:
    """Body across the whole 512 px width, 384 rows tall: a 512 x 384 tile at 1 px per voxel."""
    arr = np.full((n, 512, 512), -1000, np.int16)
    arr[:, 64:448, :] = 40
    arr[:, 150:350, 60:230] = -850
    return Volume(arr, spacing=(5.0, 0.7, 0.7))


def test_a_512_px_tile_fills_a_512_px_image() -> None:
    assert montage_size((1, 1), (512 + GUTTER_PX, 384 + BAND_PX + GUTTER_PX)) == (512, 398)


def test_gpt4o_native_resolution_costs_less_than_one_image_per_slice() -> None:
    """The naive payload (one 512 x 512 image per slice) costs 255 tokens per slice on gpt-4o; ctlens packs
    five 512 x 398 cells into a 512 x 2048 image (765 tokens)."""
    vol = _chest()
    p = build_payload(
        vol, "q", "openai", "gpt-4o", 10**6, windows=("lung",), crops=False, min_scale=1.0, progress=False
    )
    tiles = [t for im in p.images for t in im.tiles]
    assert sorted(t.slice_index for t in tiles) == list(range(30)) and {t.scale for t in tiles} == {1.0}
    naive = 30 * tk.image_tokens(512, 512, "openai", "gpt-4o")
    images = sum(im.tokens for im in p.images)
    assert all(im.tokens == tk.image_tokens(im.width, im.height, "openai", "gpt-4o") for im in p.images)
    assert images <= 0.65 * naive, (images, naive)
    assert p.token_estimate < naive  # even with the text bound added


def _brute_force(planner: Planner, n: int, cell: tuple[int, int]) -> int:
    """Cheapest cover of ``n`` cells by any multiset of grids (exhaustive; small ``n`` only)."""
    # Only a grid's cell count (capped at n: more room is as good) and tokens matter: one grid per distinct pair.
    grids = list({(min(g.cells, n), g.tokens): g for g in planner.grids(cell)}.values())
    best = None
    for k in range(1, n + 1):
        for combo in itertools.combinations_with_replacement(grids, k):
            if sum(g.cells for g in combo) >= n:
                cost = sum(g.tokens + planner.image_overhead for g in combo)
                best = cost if best is None else min(best, cost)
        if best is not None and k * min(g.tokens for g in grids) > best:
            break
    assert best is not None
    return best


@pytest.mark.parametrize(
    ("provider", "model", "cell"),
    [
        ("openai", "gpt-5.4", (418, 468)),
        ("openai", "gpt-4o", (514, 400)),
        ("anthropic", "claude-sonnet-4-6", (520, 460)),
        ("gemini", "gemini-2.5-flash", (400, 420)),
    ],
)
def test_pack_is_the_cheapest_mix(provider: str, model: str, cell: tuple[int, int]) -> None:
    planner = Planner(provider, model, None)
    for n in range(1, 9):
        grids = planner.pack(n, cell)
        assert sum(g.cells for g in grids) >= n > sum(g.cells for g in grids[:-1])  # only the last has room left
        assert [g.cells for g in grids] == sorted((g.cells for g in grids), reverse=True)
        cost = sum(g.tokens + planner.image_overhead for g in grids)
        assert cost == _brute_force(planner, n, cell), (n, [(g.width, g.height, g.cells) for g in grids])
