"""The image planner of a payload: which slices, windows and crops go into which images, at what scale and cost.

:func:`plan_images` lays the montage out: every slice with body in the first window at the largest scale (image
pixels per voxel, from 1.0 down to ``min_scale``) that fits the budget, else as many slices as fit at
``min_scale`` (chosen by :func:`~ctlens.llm.slice_selection.select_slices`: candidates first, then coverage);
then full-resolution crops of the candidate boxes; then the other windows for the highest-priority slices while
budget remains. :class:`Planner` knows the provider's cost steps: the grids (columns x rows of cells) that fit one
image, sized on a cost step (:func:`ctlens.llm.token_costs.best_size`), and the cheapest mix of them for a cell
count (:meth:`Planner.pack`). Nothing is rendered here.

Example:
    >>> planner = Planner("anthropic", "claude-sonnet-4-6", None)
    >>> [(g.cols, g.rows, g.width, g.height, g.tokens) for g in planner.pack(3, (130, 116))]
    [(1, 3, 140, 364, 65)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ctlens.analysis.findings import Candidate
from ctlens.core.errors import PayloadBudgetError
from ctlens.llm.findings_text import candidate_box
from ctlens.llm.labelled_montage import BAND_PX, GUTTER_PX, montage_size, window_label
from ctlens.llm.legend import BLOCK_FRAMING
from ctlens.llm.payload_types import Box
from ctlens.llm.slice_selection import SliceStats, select_slices
from ctlens.llm.token_costs import GEMINI_LEVEL_CANVAS, best_size, image_tokens, limits, rule_for

__all__ = ["Grid", "Plan", "PlannedImage", "Planner", "candidate_boxes", "plan_images"]

SCALE_LADDER = (1.0, 0.875, 0.75, 0.625, 0.5)
"""Montage scales tried, largest first (``min_scale`` is added when it is not on the ladder)."""
CROP_TARGET_PX = 192
"""Crops are drawn at about this size (at least native resolution, at most 2 px per voxel)."""
IMAGE_LINE_BYTES = 60
"""Typical length of one image's legend line (``Image 3: lung window, 5 slices (#10-#14), 1.00 px/voxel.``)."""

TileItem = tuple[int, str, tuple[int, int, int, int]]
"""``(slice index, window, (y0, y1, x0, x1) voxel region)`` of one tile."""


def candidate_boxes(items: Iterable[Box | Candidate] | None, shape: tuple[int, int, int]) -> list[Box]:
    """Voxel boxes of ``items`` (half-open ``(z0, z1, y0, y1, x0, x1)`` boxes or analysis candidates) clipped to
    ``shape``; boxes left empty by the clipping are dropped.

    Example:
        >>> candidate_boxes([(2, 3, 10, 20, 5, 15), (0, 9, 0, 99, 0, 99), (9, 12, 0, 5, 0, 5)], (4, 50, 50))
        [(2, 3, 10, 20, 5, 15), (0, 4, 0, 50, 0, 50)]
    """
    out: list[Box] = []
    for item in items or ():
        z0, z1, y0, y1, x0, x1 = candidate_box(item) if isinstance(item, Candidate) else (int(v) for v in item)
        z0, y0, x0 = max(z0, 0), max(y0, 0), max(x0, 0)
        z1, y1, x1 = min(z1, shape[0]), min(y1, shape[1]), min(x1, shape[2])
        if z1 > z0 and y1 > y0 and x1 > x0:
            out.append((z0, z1, y0, y1, x0, x1))
    return out


@dataclass(frozen=True)
class Grid:
    """``cols`` x ``rows`` cells in one image of ``width`` x ``height`` pixels (on a cost step) costing ``tokens``."""

    cols: int
    rows: int
    width: int
    height: int
    tokens: int

    @property
    def cells(self) -> int:
        """How many tiles the grid holds."""
        return self.cols * self.rows


@dataclass
class PlannedImage:
    """One image to render: its grid, cell and tile sizes, the tiles in order, and the pixels per voxel (y, x)."""

    grid: Grid
    cell: tuple[int, int]
    tile_hw: tuple[int, int]
    items: list[TileItem]
    kind: str
    title: str
    factors: tuple[float, float]


class Planner:
    """The grids worth using for ``provider``/``model``/``detail`` and the cheapest mix of them per cell count."""

    def __init__(self, provider: str, model: str, detail: str | None) -> None:
        self.provider, self.model, self.detail = provider, model, detail
        self.rule = rule_for(provider, model)
        self.patch_margin = 1 if self.rule.kind == "openai_patch" else 0  # billing may round one token up
        # What one more image adds besides its pixels, as the text bound counts it: its legend line and block.
        self.image_overhead = self.patch_margin + BLOCK_FRAMING + IMAGE_LINE_BYTES
        lim = limits(provider, model)
        # The largest canvas worth planning: the provider's own resize limit (images beyond it are downscaled),
        # and never above the many-images dimension limit so the request stays valid whatever its image count.
        caps = {"claude": self.rule.max_edge, "openai_tile": 2048, "openai_patch": 2048, "gemini_tile": 1536}
        level = (detail or "high").lower().removeprefix("media_resolution_")
        cap = caps.get(self.rule.kind) or GEMINI_LEVEL_CANVAS.get(level, 1536)
        self.max_canvas = min(cap, lim.max_dimension, lim.max_dimension_many_images or lim.max_dimension)
        self._cache: dict[tuple[int, int], list[Grid]] = {}
        self._tables: dict[tuple[int, int], list[tuple[int, int, int]]] = {}

    def grids(self, cell: tuple[int, int]) -> list[Grid]:
        """Every grid of ``cell`` (width, height) px cells that fits one image, sized on a cost step."""
        if cell in self._cache:
            return self._cache[cell]
        out = []
        cw, ch = cell
        reach = self.max_canvas + GUTTER_PX  # the last cell's gutter lies outside the canvas
        for cols in range(1, max(1, reach // cw) + 1):
            for rows in range(1, max(1, reach // ch) + 1):
                w, h = montage_size((cols, rows), cell)
                if w > self.max_canvas or h > self.max_canvas:
                    continue
                try:
                    bw, bh = best_size(w, h, self.provider, self.model, self.detail)
                except ValueError:
                    continue
                if bw > self.max_canvas or bh > self.max_canvas:
                    continue
                out.append(Grid(cols, rows, bw, bh, image_tokens(bw, bh, self.provider, self.model, self.detail)))
        self._cache[cell] = out
        return out

    def _front(self, cell: tuple[int, int]) -> list[Grid]:
        """The grids worth using: no other grid holds as many cells or more for as few tokens or fewer."""
        front: list[Grid] = []
        for g in sorted(self.grids(cell), key=lambda g: (-g.cells, g.tokens, g.width * g.height)):
            if not front or g.tokens < front[-1].tokens:
                front.append(g)
        return front

    def pack(self, n: int, cell: tuple[int, int]) -> list[Grid]:
        """Images (grids) holding ``n`` cells for the fewest tokens (then the fewest images), largest first.

        Tokens are the images' own plus :attr:`image_overhead` each (its legend line and content block in the text
        bound). An exact minimum over any mix of grid sizes (a dynamic programme on the cell count, kept per cell
        size), so the last, partly filled image is chosen together with the others. [] when a cell fits no image.
        """
        front = self._front(cell)
        if not front or n <= 0:
            return []
        table = self._tables.setdefault(cell, [(0, 0, -1)])  # per count: (tokens, images, grid to add last)
        for m in range(len(table), n + 1):  # cheapest cover of m cells = one grid + the cheapest cover of the rest
            options = []
            for i, g in enumerate(front):
                tokens, images, _ = table[max(0, m - g.cells)]
                options.append((tokens + g.tokens + self.image_overhead, images + 1, i))
            table.append(min(options))
        out = []
        while n > 0:
            g = front[table[n][2]]
            out.append(g)
            n -= g.cells
        return sorted(out, key=lambda g: -g.cells)  # full images first: only the last one may have empty cells

    def cost(self, n: int, cell: tuple[int, int]) -> float:
        """Image tokens of :meth:`pack` for ``n`` cells (infinite when a cell fits no image)."""
        grids = self.pack(n, cell)
        return sum(g.tokens for g in grids) if grids or n <= 0 else math.inf


def _factors(scale: float, spacing_yx: tuple[float, float]) -> tuple[float, float]:
    sy, sx = spacing_yx
    return scale * max(1.0, sy / sx), scale * max(1.0, sx / sy)  # square pixels in mm, never below scale


def _tile_hw(region_hw: tuple[int, int], scale: float, spacing_yx: tuple[float, float]) -> tuple[int, int]:
    fy, fx = _factors(scale, spacing_yx)
    return max(1, _ceil(region_hw[0] * fy)), max(1, _ceil(region_hw[1] * fx))


def _ceil(value: float) -> int:
    """``ceil`` that ignores float noise (spacings read back from an affine differ in the last digits)."""
    return math.ceil(value - 1e-3)


def _cell(tile_hw: tuple[int, int]) -> tuple[int, int]:
    return tile_hw[1] + GUTTER_PX, tile_hw[0] + BAND_PX + GUTTER_PX


def _max_count(planner: Planner, limit: int, cell: tuple[int, int], budget: float) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if planner.cost(mid, cell) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _chunks(items: list[TileItem], grids: list[Grid]) -> Iterable[tuple[Grid, list[TileItem]]]:
    start = 0
    for g in grids:
        yield g, items[start : start + g.cells]
        start += g.cells


@dataclass
class Plan:
    """The planned images, the montage scale, the montage's slices and the image tokens."""

    images: list[PlannedImage]
    scale: float
    slices: list[int]
    tokens: int


def plan_images(
    planner: Planner,
    stats: SliceStats,
    region: tuple[int, int, int, int],
    spacing_yx: tuple[float, float],
    windows: list[str],
    boxes: list[Box],
    crops: bool,
    budget: float,
    min_scale: float,
) -> Plan:
    """The images of a payload within ``budget`` image tokens (see the module docstring); ``region`` is the
    montage's in-plane voxel box, ``boxes`` the candidates'. Raises :class:`~ctlens.core.errors.PayloadBudgetError`
    when not even one montage tile fits."""
    y0, y1, x0, x1 = region
    present = [k for k in range(stats.n_slices) if stats.body_fraction[k] > 0] or list(range(stats.n_slices))
    must = []
    for b in boxes:
        centre = (b[0] + b[1] - 1) // 2
        for k in (centre, b[0], b[1] - 1):
            if k not in must:
                must.append(k)
    extra = len(windows) > 1 or (crops and bool(boxes))
    share = 0.6 if extra else 1.0
    ladder = sorted({s for s in SCALE_LADDER if s >= min_scale} | {min_scale}, reverse=True)
    scale, cell, tile_hw = min_scale, (0, 0), (0, 0)
    chosen: list[int] = []
    for s in ladder:
        tile_hw = _tile_hw((y1 - y0, x1 - x0), s, spacing_yx)
        cell = _cell(tile_hw)
        if planner.cost(len(present), cell) <= share * budget:
            scale, chosen = s, present
            break
    else:
        scale = min_scale
        tile_hw = _tile_hw((y1 - y0, x1 - x0), scale, spacing_yx)
        cell = _cell(tile_hw)
        count = _max_count(planner, len(present), cell, share * budget) or _max_count(
            planner, len(present), cell, budget
        )
        if count == 0:
            raise PayloadBudgetError(
                f"a budget of {int(budget)} image tokens holds no {tile_hw[1]}x{tile_hw[0]} px tile "
                f"({min_scale:g} px per voxel) for {planner.model}",
                hint="raise the token budget, lower min_scale, or crop the volume",
            )
        chosen = select_slices(stats, count, must)
    images: list[PlannedImage] = []
    primary = windows[0]
    factors = _factors(scale, spacing_yx)
    grids = planner.pack(len(chosen), cell)
    items = [(k, primary, region) for k in chosen]
    for g, part in _chunks(items, grids):
        images.append(PlannedImage(g, cell, tile_hw, part, "montage", f"{window_label(primary)} montage", factors))
    used = sum(g.tokens for g in grids)

    if crops and boxes:
        ny, nx = stats.shape_yx
        side = max(max(b[3] - b[2], b[5] - b[4]) for b in boxes)
        side = int(min(max(side * 1.6, side + 16, 48), 256, ny, nx))  # the box with a margin of context
        crop_scale = float(min(2.0, max(1.0, CROP_TARGET_PX / side)))
        crop_hw = _tile_hw((side, side), crop_scale, spacing_yx)
        crop_factors = _factors(crop_scale, spacing_yx)
        crop_cell = _cell(crop_hw)
        crop_items = []
        for b in boxes:
            cy, cx = (b[2] + b[3]) // 2, (b[4] + b[5]) // 2
            ry0 = int(min(max(cy - side // 2, 0), max(ny - side, 0)))
            rx0 = int(min(max(cx - side // 2, 0), max(nx - side, 0)))
            reg = (ry0, min(ry0 + side, ny), rx0, min(rx0 + side, nx))
            for w in windows:
                crop_items.append(((b[0] + b[1] - 1) // 2, w, reg))
        n = _max_count(planner, len(crop_items), crop_cell, budget - used)
        if n:
            crop_grids = planner.pack(n, crop_cell)
            for g, part in _chunks(crop_items[:n], crop_grids):
                images.append(PlannedImage(g, crop_cell, crop_hw, part, "crop", "candidate crops", crop_factors))
            used += sum(g.tokens for g in crop_grids)

    if not chosen:
        return Plan(images, scale, chosen, used)
    score = stats.score()
    order = [k for k in must if k in chosen] + sorted(
        (k for k in chosen if k not in must), key=lambda k: -float(score[k])
    )
    for w in windows[1:]:
        n = _max_count(planner, len(order), cell, budget - used)
        if n == 0:
            break
        picked = sorted(order[:n])
        grids = planner.pack(n, cell)
        for g, part in _chunks([(k, w, region) for k in picked], grids):
            images.append(PlannedImage(g, cell, tile_hw, part, "montage", f"{window_label(w)} montage", factors))
        used += sum(g.tokens for g in grids)
    return Plan(images, scale, chosen, used)
