"""Token-budgeted, de-identified LLM payloads of a CT series: :func:`build_payload`.

What it does, in order:

0. reorients the volume to the display rule (:func:`ctlens.preprocess.display.to_display`, a view, no copy):
   every tile has anterior at the top and the patient's left on the image's right, whatever the storage order;
   slice numbers shown are 1-based (``#1`` = most inferior), ``Tile.slice_index`` stays the 0-based index;
1. streams the series once (:func:`ctlens.llm.slice_selection.scan_slices`) for the body's box and a per-slice
   score; a ``numpy.memmap`` volume stays on disk;
2. plans the images within the budget (:func:`ctlens.llm.plan.plan_images`): montages of the slices at the largest
   scale that fits, full-resolution crops of the candidates, then the other windows;
3. sizes each image on a cost step of the provider (:func:`ctlens.llm.token_costs.best_size`), so the provider
   never rescales it and the recorded scale is the scale the model sees;
4. renders the images slice by slice (pixels by :mod:`ctlens.preprocess.slice_render`, laid out by
   :mod:`ctlens.llm.labelled_montage`: labelled tiles, 1 cm scale bars, PNG without metadata) and writes the
   text block (:func:`ctlens.llm.legend.payload_text`: question, de-identified acquisition facts, orientation
   and legend, findings from :mod:`ctlens.llm.findings_text`).

Every image records which slice and which voxel region each tile shows and at what scale
(:attr:`~ctlens.llm.payload_types.PayloadImage.tiles`). ``token_estimate`` = image tokens (the providers' rules) +
a bound on text tokens (:func:`ctlens.llm.legend.text_token_bound`), so it is never below the provider's count.
The types are in :mod:`ctlens.llm.payload_types`, the request bodies in :mod:`ctlens.llm.providers.formats`.

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

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.analysis.findings import Candidate, Findings
from ctlens.core.errors import PayloadBudgetError
from ctlens.core.progress import ProgressCallback, announce
from ctlens.core.volume import Volume
from ctlens.llm.findings_text import payload_findings_lines
from ctlens.llm.labelled_montage import (
    BAND_PX,
    TileDrawing,
    cell_origin,
    draw_montage,
    encode_png,
    resize_pixels,
    window_label,
)
from ctlens.llm.legend import acquisition_facts, orientation_line, payload_text, plane_name, text_token_bound
from ctlens.llm.payload_types import Box, Payload, PayloadImage, Tile
from ctlens.llm.plan import Plan, PlannedImage, Planner, candidate_boxes, plan_images
from ctlens.llm.slice_selection import scan_slices
from ctlens.llm.token_costs import RequestLimits, check_provider, limits, resized_size, rule_for
from ctlens.preprocess.display import oblique_note, to_display
from ctlens.preprocess.slice_render import plane_pixels, window_pixels

__all__ = ["DEFAULT_MODELS", "build_payload"]

DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4.1", "gemini": "gemini-3-pro-preview"}


def _z_mm(volume: Volume, k: int) -> float:
    return float(np.dot(volume.world((k, 0, 0)), volume.direction[:, 0]))


def _render(volume: Volume, planned: PlannedImage, planner: Planner, advance: Callable[[int], None]) -> PayloadImage:
    g = planned.grid
    drawings, records = [], []
    fy, fx = planned.factors
    for i, (k, window, reg) in enumerate(planned.items):
        ry0, ry1, rx0, rx1 = reg
        hu = np.asarray(plane_pixels(volume, k)[0][ry0:ry1, rx0:rx1], dtype=np.float32)
        region_hw = (ry1 - ry0, rx1 - rx0)
        tile_hw = (
            min(planned.tile_hw[0], max(1, math.ceil(region_hw[0] * fy - 1e-3))),
            min(planned.tile_hw[1], max(1, math.ceil(region_hw[1] * fx - 1e-3))),
        )
        pix = resize_pixels(window_pixels(hu, window), tile_hw)
        z = _z_mm(volume, k)
        tag = {"lung": "L", "mediastinum": "M", "bone": "B", "rgb": "RGB"}.get(window, window[:3])
        px_per_mm = tile_hw[1] / (region_hw[1] * volume.spacing[2])
        drawings.append(TileDrawing(pix, f"#{k + 1} z{z:+.0f}mm {tag}", px_per_mm))
        cx, cy = cell_origin(i, g.cols, planned.cell)
        cy += BAND_PX
        scale = min(tile_hw[0] / region_hw[0], tile_hw[1] / region_hw[1])
        box = (cx, cy, cx + tile_hw[1], cy + tile_hw[0])
        records.append(Tile(k, round(z, 3), window, reg, round(scale, 4), box, planned.kind))
        advance(1)
    img = draw_montage(drawings, canvas=(g.width, g.height), grid=(g.cols, g.rows), cell_size=planned.cell)
    provider_size = resized_size(g.width, g.height, planner.provider, planner.model, planner.detail)
    return PayloadImage(encode_png(img), g.width, g.height, g.tokens, provider_size, planned.title, records)


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
    findings: Findings | None = None,
    candidates: Sequence[Box | Candidate] | None = None,
    windows: Sequence[str] = ("lung", "mediastinum"),
    rgb_windows: bool = False,
    crops: bool = True,
    *,
    detail: str | None = None,
    min_scale: float = 0.5,
    progress: bool | ProgressCallback = True,
) -> Payload:
    """A de-identified, token-budgeted payload of ``volume`` for ``provider``/``model``; see the module docstring.

    ``volume`` may be stored in any order: it is drawn in display order (:mod:`ctlens.preprocess.display`).
    ``candidates``: lesion boxes ``(z0, z1, y0, y1, x0, x1)`` (half-open 0-based voxel indices of the display
    volume, as ``ctlens.analysis`` reports them) or ``ctlens.analysis`` candidates; their slices are always shown
    and they get full-resolution crops. ``findings``: a ``ctlens.analysis.Findings``: its measurements and
    candidates go in the text block (:func:`ctlens.llm.findings_text.payload_findings_lines`) and its candidates
    count as ``candidates``.
    ``rgb_windows``: one tile per slice with lung / mediastinum / bone as R / G / B instead of ``windows``.
    ``detail``: OpenAI detail (default ``high``) or Gemini 3 media resolution (default: the highest that fits).
    ``min_scale``: the smallest image pixels per voxel a montage tile may have. Raises
    :class:`~ctlens.core.errors.PayloadBudgetError` when not even one tile fits the budget.
    """
    if not isinstance(volume, Volume):
        from ctlens.io import load

        volume = load(volume)
    volume = to_display(volume, contiguous=False)
    provider = check_provider(provider)
    model = model or DEFAULT_MODELS[provider]
    if detail is None and rule_for(provider, model).kind == "gemini_level":
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
    planner = Planner(provider, model, detail)
    if rgb_windows:
        wins = ["rgb"]
    else:
        wins = list(dict.fromkeys(windows)) or ["lung"]
        for w in wins:
            window_label(w)  # unknown names fail here, before any work
    shape = volume.shape
    boxes = candidate_boxes([*(candidates or ()), *(findings.candidates if findings is not None else ())], shape)
    finding_lines = payload_findings_lines(findings) if findings is not None else []
    facts = acquisition_facts(volume)
    plane, orientation = plane_name(volume), orientation_line(volume)
    if oblique := oblique_note(volume):
        orientation += f"; {oblique}"
    spacing_yx = (volume.spacing[1], volume.spacing[2])
    lim = limits(provider, model)
    patch_margin = planner.patch_margin

    with _progress(progress, shape[0]) as bar:
        stats = scan_slices(volume.array, advance=bar.advance)
        y0, y1, x0, x1 = stats.body_box
        for b in boxes:  # the montage region always holds every candidate
            y0, y1, x0, x1 = min(y0, b[2]), max(y1, b[3]), min(x0, b[4]), max(x1, b[5])
        region = (y0, y1, x0, x1)

        def text_of(images: list[PayloadImage]) -> str:
            return payload_text(
                question, facts, plane=plane, orientation=orientation, region=region, windows=wins, images=images,
                findings=finding_lines,
            )  # fmt: skip

        reserve = text_token_bound(text_of([]), blocks=1) + 60 * (2 + len(wins) + (1 if boxes else 0))
        for _attempt in range(8):
            budget = token_budget - reserve
            if budget <= 0:
                raise PayloadBudgetError(
                    f"a token budget of {token_budget} leaves nothing for images after the text (~{reserve} tokens)",
                    hint="raise the budget or shorten the question and findings",
                )
            plan = plan_images(planner, stats, region, spacing_yx, wins, boxes, crops, budget, min_scale)
            planned_tokens = plan.tokens + patch_margin * len(plan.images)
            stub = [
                PayloadImage(b"", p.grid.width, p.grid.height, p.grid.tokens, (0, 0), p.title, _stub_tiles(p, plan))
                for p in plan.images
            ]
            text = text_of(stub)
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
    text = text_of(images)
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


def _stub_tiles(p: PlannedImage, plan: Plan) -> list[Tile]:
    return [Tile(k, 0.0, w, reg, plan.scale, (0, 0, 0, 0), p.kind) for k, w, reg in p.items]


def _check_bytes(images: list[PayloadImage], lim: RequestLimits, provider: str) -> None:
    sizes = [4 * math.ceil(len(im.png) / 3) for im in images]  # base64 size
    if lim.bytes_per_image is not None and max(sizes, default=0) > lim.bytes_per_image:
        raise PayloadBudgetError(
            f"an image of {max(sizes)} base64 bytes exceeds {provider}'s {lim.bytes_per_image} bytes per image"
        )
    if lim.bytes_per_request is not None and sum(sizes) > lim.bytes_per_request:
        raise PayloadBudgetError(
            f"{sum(sizes)} base64 bytes of images exceed {provider}'s {lim.bytes_per_request} bytes per request"
        )
