"""Token-budgeted, de-identified LLM payloads of a CT series: :func:`build_payload`.

What it does, in order:

1. streams the series once (:func:`ctlens.llm.slice_selection.scan_slices`) for the body's box and a per-slice
   score; a ``numpy.memmap`` volume stays on disk;
2. plans montages: every slice with body in the first window at the largest scale (pixels per voxel, never
   below ``min_scale``) that fits the budget, else as many slices as fit at ``min_scale``, chosen by coverage,
   score and the lesion candidates given; then full-resolution crops of the candidates; then the other windows
   for the highest-priority slices, while budget remains;
3. sizes each image on a cost step of the provider (:func:`ctlens.llm.tokens.best_size`), so the provider never
   rescales it and the recorded scale is the scale the model sees;
4. renders the images slice by slice (labelled tiles, 1 cm scale bars, PNG without metadata) and writes the text
   block: question, de-identified acquisition facts, orientation and legend, findings.

Every image records which slice and which voxel region each tile shows and at what scale
(:attr:`PayloadImage.tiles`). ``token_estimate`` = image tokens (the providers' rules) + a bound on text tokens
(:func:`ctlens.llm.legend.text_token_bound`), so it is never below the provider's count.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> vol = Volume(np.full((4, 64, 64), -1000, np.int16), spacing=(5.0, 0.8, 0.8))
    >>> vol.array[:, 8:56, 8:56] = 40
    >>> p = build_payload(vol, "Any mass?", token_budget=2000, progress=False)
    >>> p.token_estimate <= 2000, len(p.images), sorted({t.slice_index for t in p.images[0].tiles})
    (True, 2, [0, 1, 2, 3])
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import PayloadBudgetError
from ctlens.core.progress import ProgressCallback, announce
from ctlens.core.volume import Volume
from ctlens.llm import tokens as tk
from ctlens.llm.legend import (
    BLOCK_FRAMING,
    acquisition_facts,
    facts_line,
    orientation_line,
    plane_name,
    text_token_bound,
)
from ctlens.llm.render import (
    BAND_PX,
    GUTTER_PX,
    TileDrawing,
    cell_origin,
    draw_montage,
    encode_png,
    montage_size,
    resize_pixels,
    window_image,
    window_label,
)
from ctlens.llm.slice_selection import SliceStats, scan_slices, select_slices

__all__ = ["DEFAULT_MODELS", "Box", "Payload", "PayloadImage", "Tile", "build_payload", "candidate_boxes"]

DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4.1", "gemini": "gemini-3-pro-preview"}
SCALE_LADDER = (1.0, 0.875, 0.75, 0.625, 0.5)
CROP_TARGET_PX = 192
"""Crops are drawn at about this size (at least native resolution, at most 2 px per voxel)."""

Box = tuple[int, int, int, int, int, int]
"""``(z0, z1, y0, y1, x0, x1)`` voxel indices, half-open like Python slices."""


@dataclass(frozen=True)
class Tile:
    """What one tile of an image shows: slice, window, voxel region, and how large it is drawn."""

    slice_index: int
    z_mm: float
    window: str
    region: tuple[int, int, int, int]
    """``(y0, y1, x0, x1)`` half-open voxel bounds shown."""
    scale: float
    """Image pixels per voxel (the smaller of the row and column scales), as the model sees it."""
    pixel_box: tuple[int, int, int, int]
    """``(x0, y0, x1, y1)`` of the tile's pixels in the image (label band excluded)."""
    kind: str = "montage"

    def shows(self, box: Box) -> bool:
        """True when this tile shows slice ``z`` of ``box`` and its whole in-plane extent."""
        z0, z1, y0, y1, x0, x1 = box
        ry0, ry1, rx0, rx1 = self.region
        return z0 <= self.slice_index < z1 and ry0 <= y0 and y1 <= ry1 and rx0 <= x0 and x1 <= rx1


@dataclass
class PayloadImage:
    """One PNG of the payload, its cost and what it shows."""

    png: bytes
    width: int
    height: int
    tokens: int
    provider_size: tuple[int, int]
    title: str
    tiles: list[Tile] = field(default_factory=list)

    def base64(self) -> str:
        """The PNG as base64 text (what the request carries)."""
        return base64.b64encode(self.png).decode("ascii")


@dataclass
class Payload:
    """A ready-to-send payload; see the module docstring."""

    provider: str
    model: str
    detail: str | None
    question: str
    text: str
    facts: dict[str, Any]
    images: list[PayloadImage]
    image_tokens: int
    text_token_bound: int
    token_estimate: int
    token_budget: int

    # -- provider message formats (plain dicts, JSON-serialisable) --------------------------------------------
    def anthropic_content(self) -> list[dict[str, Any]]:
        """Anthropic Messages API content blocks: the images, then the text (Anthropic's recommended order)."""
        blocks: list[dict[str, Any]] = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": im.base64()}}
            for im in self.images
        ]
        return [*blocks, {"type": "text", "text": self.text}]

    def anthropic_messages(self) -> list[dict[str, Any]]:
        """``messages=`` for ``anthropic.Anthropic().messages.create``."""
        return [{"role": "user", "content": self.anthropic_content()}]

    def openai_chat_messages(self) -> list[dict[str, Any]]:
        """``messages=`` for OpenAI Chat Completions (images as data URLs with ``detail``)."""
        detail = self.detail or "high"
        content: list[dict[str, Any]] = [{"type": "text", "text": self.text}]
        content += [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{im.base64()}", "detail": detail}}
            for im in self.images
        ]
        return [{"role": "user", "content": content}]

    def openai_responses_input(self) -> list[dict[str, Any]]:
        """``input=`` for the OpenAI Responses API."""
        detail = self.detail or "high"
        content: list[dict[str, Any]] = [{"type": "input_text", "text": self.text}]
        content += [
            {"type": "input_image", "image_url": f"data:image/png;base64,{im.base64()}", "detail": detail}
            for im in self.images
        ]
        return [{"role": "user", "content": content}]

    def gemini_parts(self) -> list[dict[str, Any]]:
        """Gemini ``generateContent`` parts (REST JSON); Gemini 3 parts carry their media resolution."""
        rule = tk.rule_for("gemini", self.model) if self.provider == "gemini" else None
        parts: list[dict[str, Any]] = []
        for im in self.images:
            part: dict[str, Any] = {"inlineData": {"mimeType": "image/png", "data": im.base64()}}
            if rule is not None and rule.kind == "gemini_level":
                part["mediaResolution"] = {"level": f"MEDIA_RESOLUTION_{(self.detail or 'high').upper()}"}
            parts.append(part)
        return [*parts, {"text": self.text}]

    def gemini_contents(self) -> list[dict[str, Any]]:
        """``contents`` for Gemini ``generateContent``."""
        return [{"role": "user", "parts": self.gemini_parts()}]

    def request(self) -> dict[str, Any]:
        """The request body fields for this payload's provider (OpenAI: both APIs)."""
        if self.provider == "anthropic":
            return {"model": self.model, "messages": self.anthropic_messages()}
        if self.provider == "openai":
            return {
                "chat_completions": {"model": self.model, "messages": self.openai_chat_messages()},
                "responses": {"model": self.model, "input": self.openai_responses_input()},
            }
        return {"model": self.model, "contents": self.gemini_contents()}

    # -- records ----------------------------------------------------------------------------------------------
    def to_dict(self, *, include_request: bool = True) -> dict[str, Any]:
        """Everything as plain JSON types: accounting, text, facts, image records, and the request."""
        out: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "detail": self.detail,
            "token_budget": self.token_budget,
            "token_estimate": self.token_estimate,
            "image_tokens": self.image_tokens,
            "text_token_bound": self.text_token_bound,
            "question": self.question,
            "text": self.text,
            "facts": self.facts,
            "images": [
                {
                    "title": im.title,
                    "width": im.width,
                    "height": im.height,
                    "tokens": im.tokens,
                    "png_bytes": len(im.png),
                    "tiles": [
                        {
                            "slice_index": t.slice_index,
                            "z_mm": t.z_mm,
                            "window": t.window,
                            "region_yx": list(t.region),
                            "scale": t.scale,
                            "pixel_box": list(t.pixel_box),
                            "kind": t.kind,
                        }
                        for t in im.tiles
                    ],
                }
                for im in self.images
            ],
        }
        if include_request:
            out["request"] = self.request()
        return out

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON atomically (no half-written file on failure)."""
        from ctlens.io.files import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)

    def save_preview(self, path: str | Path) -> Path:
        """Write all images, one under the other, as one PNG (to look at what is sent)."""
        from PIL import Image

        from ctlens.io.files import atomic_output

        pics = [Image.open(io.BytesIO(im.png)).convert("RGB") for im in self.images]
        width = max(p.width for p in pics)
        height = sum(p.height for p in pics) + 8 * (len(pics) - 1)
        sheet = Image.new("RGB", (width, height), (40, 40, 40))
        y = 0
        for p in pics:
            sheet.paste(p, (0, y))
            y += p.height + 8
        with atomic_output(path) as tmp:
            tmp.write_bytes(encode_png(sheet))
        return Path(path)


# ------------------------------------------------------------------------------------------------------------
# Candidates
# ------------------------------------------------------------------------------------------------------------
def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _box_of(item: Any) -> Box | None:
    keys = ("z0", "z1", "y0", "y1", "x0", "x1")
    bbox, slice_range = _field(item, "bbox"), _field(item, "slice_range")
    if slice_range is not None and bbox is not None and len(bbox) == 6:
        # ctlens.analysis Candidate: bbox = (z0, y0, x0, z1, y1, x1), inclusive
        z0, y0, x0, z1, y1, x1 = (int(v) for v in bbox)
        return (z0, z1 + 1, y0, y1 + 1, x0, x1 + 1)
    if isinstance(item, dict):
        if all(k in item for k in keys):
            return tuple(int(item[k]) for k in keys)  # type: ignore[return-value]
        inner = item.get("box", item.get("bbox"))
        return _box_of(inner) if inner is not None else None
    if all(hasattr(item, k) for k in keys):
        return tuple(int(getattr(item, k)) for k in keys)  # type: ignore[return-value]
    for attr in ("box", "bbox"):
        if hasattr(item, attr) and getattr(item, attr) is not None:
            return _box_of(getattr(item, attr))
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 6:
        return tuple(int(v) for v in item)  # type: ignore[return-value]
    return None


def candidate_boxes(items: Iterable[Any] | None, shape: tuple[int, int, int]) -> list[Box]:
    """Voxel boxes from tuples ``(z0, z1, y0, y1, x0, x1)``, dicts or objects with those fields (or ``box``),
    clipped to ``shape``; items without a box are skipped.

    Example:
        >>> candidate_boxes([(2, 3, 10, 20, 5, 15), {"box": (0, 9, 0, 99, 0, 99)}, "text only"], (4, 50, 50))
        [(2, 3, 10, 20, 5, 15), (0, 4, 0, 50, 0, 50)]
    """
    out: list[Box] = []
    for item in items or ():
        box = _box_of(item)
        if box is None:
            continue
        z0, z1, y0, y1, x0, x1 = box
        z0, y0, x0 = max(z0, 0), max(y0, 0), max(x0, 0)
        z1, y1, x1 = min(z1, shape[0]), min(y1, shape[1]), min(x1, shape[2])
        if z1 > z0 and y1 > y0 and x1 > x0:
            out.append((z0, z1, y0, y1, x0, x1))
    return out


def _expand_findings(findings: Any) -> list[Any]:
    """A list of findings; a ``ctlens.analysis`` ``Findings`` object becomes its measurements line + candidates."""
    if findings is None:
        return []
    if hasattr(findings, "candidates") and hasattr(findings, "measurements"):
        values = [
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in dict(findings.measurements).items()
            if isinstance(v, int | float | str) and not isinstance(v, bool) and len(str(v)) < 40
        ]
        head = [f"{getattr(findings, 'region', 'analysis')} measurements: {', '.join(values[:12])}"] if values else []
        return head + list(findings.candidates)
    return [findings] if isinstance(findings, str) else list(findings)


def _finding_text(item: Any) -> str:
    if isinstance(item, str):
        return item.strip()

    def get(k: str) -> Any:
        return _field(item, k)

    name = get("label") or get("name") or get("kind") or "finding"
    text = str(name)
    if get("side"):
        text = f"{get('side')} {text}"
    if get("description"):
        text += f": {get('description')}"
    if get("diameter_mm"):
        text += f", {float(get('diameter_mm')):.0f} mm"
    if get("mean_hu") not in (None, 0, 0.0):
        text += f", mean {float(get('mean_hu')):.0f} HU"
    if get("score") is not None:
        text += f" (score {float(get('score')):.2f})"
    box = _box_of(item)
    if box is not None:
        text += f" at slices {box[0]}-{box[1] - 1}, rows {box[2]}-{box[3] - 1}, columns {box[4]}-{box[5] - 1}"
    return text


# ------------------------------------------------------------------------------------------------------------
# Planning
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grid:
    cols: int
    rows: int
    width: int
    height: int
    tokens: int

    @property
    def cells(self) -> int:
        return self.cols * self.rows


@dataclass
class _PlannedImage:
    grid: _Grid
    cell: tuple[int, int]
    tile_hw: tuple[int, int]
    items: list[tuple[int, str, tuple[int, int, int, int]]]
    kind: str
    title: str
    factors: tuple[float, float]


IMAGE_LINE_BYTES = 60
"""Typical length of one image's legend line (``Image 3: lung window, 5 slices (#10-#14), 1.00 px/voxel.``)."""


class _Planner:
    def __init__(self, provider: str, model: str, detail: str | None) -> None:
        self.provider, self.model, self.detail = provider, model, detail
        self.rule = tk.rule_for(provider, model)
        self.patch_margin = 1 if self.rule.kind == "openai_patch" else 0  # billing may round one token up
        # What one more image adds besides its pixels, as the text bound counts it: its legend line and block.
        self.image_overhead = self.patch_margin + BLOCK_FRAMING + IMAGE_LINE_BYTES
        lim = tk.limits(provider, model)
        # The largest canvas worth planning: the provider's own resize limit (images beyond it are downscaled),
        # and never above the many-images dimension limit so the request stays valid whatever its image count.
        caps = {"claude": self.rule.max_edge, "openai_tile": 2048, "openai_patch": 2048, "gemini_tile": 1536}
        level = (detail or "high").lower().removeprefix("media_resolution_")
        cap = caps.get(self.rule.kind) or tk.GEMINI_LEVEL_CANVAS.get(level, 1536)
        self.max_canvas = min(cap, lim.max_dimension, lim.max_dimension_many_images or lim.max_dimension)
        self._cache: dict[tuple[int, int], list[_Grid]] = {}
        self._tables: dict[tuple[int, int], list[tuple[int, int, int]]] = {}

    def grids(self, cell: tuple[int, int]) -> list[_Grid]:
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
                    bw, bh = tk.best_size(w, h, self.provider, self.model, self.detail)
                except ValueError:
                    continue
                if bw > self.max_canvas or bh > self.max_canvas:
                    continue
                out.append(_Grid(cols, rows, bw, bh, tk.image_tokens(bw, bh, self.provider, self.model, self.detail)))
        self._cache[cell] = out
        return out

    def _front(self, cell: tuple[int, int]) -> list[_Grid]:
        """The grids worth using: no other grid holds as many cells or more for as few tokens or fewer."""
        front: list[_Grid] = []
        for g in sorted(self.grids(cell), key=lambda g: (-g.cells, g.tokens, g.width * g.height)):
            if not front or g.tokens < front[-1].tokens:
                front.append(g)
        return front

    def pack(self, n: int, cell: tuple[int, int]) -> list[_Grid]:
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
        grids = self.pack(n, cell)
        return sum(g.tokens for g in grids) if grids or n <= 0 else math.inf


def _factors(scale: float, spacing_yx: tuple[float, float]) -> tuple[float, float]:
    sy, sx = spacing_yx
    return scale * max(1.0, sy / sx), scale * max(1.0, sx / sy)  # square pixels in mm, never below scale


def _tile_hw(region_hw: tuple[int, int], scale: float, spacing_yx: tuple[float, float]) -> tuple[int, int]:
    fy, fx = _factors(scale, spacing_yx)
    return max(1, math.ceil(region_hw[0] * fy)), max(1, math.ceil(region_hw[1] * fx))


def _cell(tile_hw: tuple[int, int]) -> tuple[int, int]:
    return tile_hw[1] + GUTTER_PX, tile_hw[0] + BAND_PX + GUTTER_PX


def _max_count(planner: _Planner, limit: int, cell: tuple[int, int], budget: float) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if planner.cost(mid, cell) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _chunks(items: list[Any], grids: list[_Grid]) -> Iterable[tuple[_Grid, list[Any]]]:
    start = 0
    for g in grids:
        yield g, items[start : start + g.cells]
        start += g.cells


@dataclass
class _Plan:
    images: list[_PlannedImage]
    scale: float
    slices: list[int]
    tokens: int


def _plan(
    planner: _Planner,
    stats: SliceStats,
    region: tuple[int, int, int, int],
    spacing_yx: tuple[float, float],
    windows: list[str],
    boxes: list[Box],
    crops: bool,
    budget: float,
    min_scale: float,
) -> _Plan:
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
    images: list[_PlannedImage] = []
    primary = windows[0]
    factors = _factors(scale, spacing_yx)
    grids = planner.pack(len(chosen), cell)
    items = [(k, primary, region) for k in chosen]
    for g, part in _chunks(items, grids):
        images.append(_PlannedImage(g, cell, tile_hw, part, "montage", f"{window_label(primary)} montage", factors))
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
                images.append(_PlannedImage(g, crop_cell, crop_hw, part, "crop", "candidate crops", crop_factors))
            used += sum(g.tokens for g in crop_grids)

    if not chosen:
        return _Plan(images, scale, chosen, used)
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
            images.append(_PlannedImage(g, cell, tile_hw, part, "montage", f"{window_label(w)} montage", factors))
        used += sum(g.tokens for g in grids)
    return _Plan(images, scale, chosen, used)


# ------------------------------------------------------------------------------------------------------------
# Rendering and text
# ------------------------------------------------------------------------------------------------------------
def _z_mm(volume: Volume, k: int) -> float:
    return float(np.dot(volume.world((k, 0, 0)), volume.direction[:, 0]))


def _render(volume: Volume, planned: _PlannedImage, planner: _Planner, advance: Callable[[int], None]) -> PayloadImage:
    g = planned.grid
    drawings, records = [], []
    fy, fx = planned.factors
    for i, (k, window, reg) in enumerate(planned.items):
        ry0, ry1, rx0, rx1 = reg
        hu = np.asarray(volume.array[k, ry0:ry1, rx0:rx1], dtype=np.float32)
        region_hw = (ry1 - ry0, rx1 - rx0)
        tile_hw = (
            min(planned.tile_hw[0], max(1, math.ceil(region_hw[0] * fy))),
            min(planned.tile_hw[1], max(1, math.ceil(region_hw[1] * fx))),
        )
        pix = resize_pixels(window_image(hu, window), tile_hw)
        z = _z_mm(volume, k)
        tag = {"lung": "L", "mediastinum": "M", "bone": "B", "rgb": "RGB"}.get(window, window[:3])
        px_per_mm = tile_hw[1] / (region_hw[1] * volume.spacing[2])
        drawings.append(TileDrawing(pix, f"#{k} z{z:+.0f}mm {tag}", px_per_mm))
        cx, cy = cell_origin(i, g.cols, planned.cell)
        cy += BAND_PX
        scale = min(tile_hw[0] / region_hw[0], tile_hw[1] / region_hw[1])
        box = (cx, cy, cx + tile_hw[1], cy + tile_hw[0])
        records.append(Tile(k, round(z, 3), window, reg, round(scale, 4), box, planned.kind))
        advance(1)
    img = draw_montage(drawings, canvas=(g.width, g.height), grid=(g.cols, g.rows), cell_size=planned.cell)
    provider_size = tk.resized_size(g.width, g.height, planner.provider, planner.model, planner.detail)
    return PayloadImage(encode_png(img), g.width, g.height, g.tokens, provider_size, planned.title, records)


def _image_line(n: int, im: PayloadImage) -> str:
    slices = sorted({t.slice_index for t in im.tiles})
    scale = min(t.scale for t in im.tiles)
    kind = "crops" if im.tiles[0].kind == "crop" else "montage"
    windows = sorted({t.window for t in im.tiles})
    if kind == "crops":
        regions = "; ".join(
            f"#{t.slice_index} rows {t.region[0]}-{t.region[1] - 1} cols {t.region[2]}-{t.region[3] - 1}"
            for t in im.tiles
            if t.window == im.tiles[0].window
        )
        return f"Image {n}: crops around candidates ({', '.join(windows)}), {scale:.2f} px/voxel: {regions}."
    run = _runs(slices)
    return f"Image {n}: {', '.join(windows)} window, {len(slices)} slices ({run}), {scale:.2f} px/voxel."


def _runs(values: list[int]) -> str:
    parts, start, prev = [], None, None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"#{start}" if start == prev else f"#{start}-#{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"#{start}" if start == prev else f"#{start}-#{prev}")
    return ", ".join(parts)


def _compose_text(
    question: str,
    plane: str,
    facts: dict[str, Any],
    orientation: str,
    region: tuple[int, int, int, int],
    windows: list[str],
    images: list[PayloadImage],
    findings: list[str],
) -> str:
    lines = [
        f"Question: {question.strip()}",
        f"CT series (de-identified): {facts_line(facts)}.",
        f"Images are {plane} slices. Each tile's label: #slice index, z = position along the slice axis (mm), "
        "window (L lung, M mediastinum, B bone). White bar = scale (1 cm unless marked).",
        f"Montage tiles show rows {region[0]}-{region[1] - 1}, columns {region[2]}-{region[3] - 1} "
        f"(the body); {orientation}.",
        "Windows: " + "; ".join(window_label(w) for w in windows) + ".",
    ]
    lines += [_image_line(i + 1, im) for i, im in enumerate(images)]
    if findings:
        lines.append("Automated findings (not a diagnosis): " + " | ".join(findings))
    return "\n".join(lines)


class _Bar:
    """A rich progress bar (scan, then render), a progress callback (``ctlens.core.progress``), or nothing."""

    def __init__(self, bar: Any = None, task: Any = None, callback: ProgressCallback | None = None) -> None:
        self.bar, self.task, self.callback = bar, task, callback
        self.done, self.total = 0, 0

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)
        if self.callback is not None:
            self.done += n
            self.callback(self.done, self.total)

    def stage(self, description: str, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=description, total=total, completed=0)
        if self.callback is not None:
            self.done, self.total = 0, total
            announce(self.callback, description)
            self.callback(0, total)


@contextmanager
def _progress(enabled: bool | ProgressCallback, total: int) -> Any:
    if callable(enabled):
        bar = _Bar(callback=enabled)
        bar.stage("payload: scanning slices", total)
        yield bar
        return
    if not enabled:
        yield _Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Bar(bar, bar.add_task("payload: scanning slices", total=total))


def build_payload(
    volume: Volume | str | Path,
    question: str,
    provider: str = "anthropic",
    model: str | None = None,
    token_budget: int = 6000,
    findings: Sequence[Any] | None = None,
    candidates: Sequence[Any] | None = None,
    windows: Sequence[str] = ("lung", "mediastinum"),
    rgb_windows: bool = False,
    crops: bool = True,
    *,
    detail: str | None = None,
    min_scale: float = 0.5,
    progress: bool | ProgressCallback = True,
) -> Payload:
    """A de-identified, token-budgeted payload of ``volume`` for ``provider``/``model``; see the module docstring.

    ``candidates``: lesion boxes ``(z0, z1, y0, y1, x0, x1)`` (half-open voxel indices) or objects / dicts with
    those fields or a ``box`` (``ctlens.analysis`` candidates, with their inclusive ``bbox``, too); their slices
    are always shown and they get full-resolution crops. ``findings``: analysis results (text, dicts, objects, or a
    ``ctlens.analysis.Findings``); their text goes in the text block and their boxes count as candidates.
    ``rgb_windows``: one tile per slice with lung / mediastinum / bone as R / G / B instead of ``windows``.
    ``detail``: OpenAI detail (default ``high``) or Gemini 3 media resolution (default: the highest that fits).
    ``min_scale``: the smallest image pixels per voxel a montage tile may have. Raises
    :class:`~ctlens.core.errors.PayloadBudgetError` when not even one tile fits the budget.
    """
    if not isinstance(volume, Volume):
        from ctlens.io import load

        volume = load(volume)
    provider = tk._check_provider(provider)
    model = model or DEFAULT_MODELS[provider]
    if detail is None and tk.rule_for(provider, model).kind == "gemini_level":
        # Gemini 3 bills a fixed count per image and level: take the highest level that fits the budget.
        for level in ("high", "medium", "low"):
            try:
                return build_payload(
                    volume, question, provider, model, token_budget, findings, candidates, windows, rgb_windows,
                    crops, detail=level, min_scale=min_scale, progress=progress,
                )  # fmt: skip
            except PayloadBudgetError:
                if level == "low":
                    raise
    planner = _Planner(provider, model, detail)
    if rgb_windows:
        wins = ["rgb"]
    else:
        wins = list(dict.fromkeys(windows)) or ["lung"]
        for w in wins:
            window_label(w)  # unknown names fail here, before any work
    shape = volume.shape
    found = _expand_findings(findings)
    boxes = candidate_boxes(list(candidates or []) + [f for f in found if not isinstance(f, str)], shape)
    finding_lines = [_finding_text(f) for f in found]
    facts = acquisition_facts(volume)
    orientation = orientation_line(volume)
    plane = plane_name(volume)
    spacing_yx = (volume.spacing[1], volume.spacing[2])
    lim = tk.limits(provider, model)
    patch_margin = planner.patch_margin

    with _progress(progress, shape[0]) as bar:
        stats = scan_slices(volume.array, advance=bar.advance)
        y0, y1, x0, x1 = stats.body_box
        for b in boxes:  # the montage region always holds every candidate
            y0, y1, x0, x1 = min(y0, b[2]), max(y1, b[3]), min(x0, b[4]), max(x1, b[5])
        region = (y0, y1, x0, x1)

        reserve = text_token_bound(
            _compose_text(question, plane, facts, orientation, region, wins, [], finding_lines), blocks=1
        ) + 60 * (2 + len(wins) + (1 if boxes else 0))
        for _attempt in range(8):
            budget = token_budget - reserve
            if budget <= 0:
                raise PayloadBudgetError(
                    f"a token budget of {token_budget} leaves nothing for images after the text (~{reserve} tokens)",
                    hint="raise the budget or shorten the question and findings",
                )
            plan = _plan(planner, stats, region, spacing_yx, wins, boxes, crops, budget, min_scale)
            planned_tokens = plan.tokens + patch_margin * len(plan.images)
            stub = [
                PayloadImage(b"", p.grid.width, p.grid.height, p.grid.tokens, (0, 0), p.title, _stub_tiles(p, plan))
                for p in plan.images
            ]
            text = _compose_text(question, plane, facts, orientation, region, wins, stub, finding_lines)
            text_bound = text_token_bound(text, blocks=len(plan.images) + 1)
            over = planned_tokens + text_bound - token_budget
            if over <= 0:
                break
            reserve += over + 16
        else:  # pragma: no cover - the loop converges in two or three rounds
            raise PayloadBudgetError(f"could not fit the payload into {token_budget} tokens")
        if len(plan.images) > lim.images_per_request:
            raise PayloadBudgetError(
                f"{len(plan.images)} images exceed {provider}'s {lim.images_per_request} images per request",
                hint="lower the token budget or use fewer windows",
            )
        bar.stage("payload: rendering tiles", sum(len(p.items) for p in plan.images))
        images = [_render(volume, p, planner, bar.advance) for p in plan.images]
    text = _compose_text(question, plane, facts, orientation, region, wins, images, finding_lines)
    text_bound = text_token_bound(text, blocks=len(images) + 1)
    _check_bytes(images, lim, provider)
    image_total = sum(im.tokens for im in images) + patch_margin * len(images)
    if image_total + text_bound > token_budget:  # pragma: no cover - the plan above already fits
        raise PayloadBudgetError(f"the payload needs {image_total + text_bound} tokens, over {token_budget}")
    return Payload(
        provider=provider,
        model=model,
        detail=detail,
        question=question,
        text=text,
        facts=facts,
        images=images,
        image_tokens=image_total,
        text_token_bound=text_bound,
        token_estimate=image_total + text_bound,
        token_budget=token_budget,
    )


def _stub_tiles(p: _PlannedImage, plan: _Plan) -> list[Tile]:
    return [Tile(k, 0.0, w, reg, plan.scale, (0, 0, 0, 0), p.kind) for k, w, reg in p.items]


def _check_bytes(images: list[PayloadImage], lim: tk.RequestLimits, provider: str) -> None:
    sizes = [4 * math.ceil(len(im.png) / 3) for im in images]  # base64 size
    if lim.bytes_per_image is not None and max(sizes, default=0) > lim.bytes_per_image:
        raise PayloadBudgetError(
            f"an image of {max(sizes)} base64 bytes exceeds {provider}'s {lim.bytes_per_image} bytes per image"
        )
    if lim.bytes_per_request is not None and sum(sizes) > lim.bytes_per_request:
        raise PayloadBudgetError(
            f"{sum(sizes)} base64 bytes of images exceed {provider}'s {lim.bytes_per_request} bytes per request"
        )
