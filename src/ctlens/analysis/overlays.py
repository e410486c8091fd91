"""Overlay montage PNG of :class:`~ctlens.analysis.findings.Findings`: ROI contours, candidate boxes, heatmap.

Each tile is one axial slice drawn by the one slice renderer (:mod:`ctlens.preprocess.slice_render`) under the
display rule (:mod:`ctlens.preprocess.display`: anterior at the top, the patient's left on the image's right,
square millimetres), in a display window (lung for chest, brain for head, soft tissue otherwise, percentiles for
non-CT), with the heatmap blended in, the ROI outline in green and each candidate's in-plane box in yellow with its
rank and score. The findings are in display space (``analyze`` runs on the display volume). Each tile says
``slice k/N`` (1-based, 1 = most inferior). Labels are drawn on the output tile at a readable size (text at least
12 px high at 100 %, growing with ``tile``) and moved apart when they would overlap. Slices: those through the top
candidates first, then slices spread over the ROI. An oblique volume says so in the title.

Example:
    >>> import tempfile, pathlib
    >>> from ctlens.analysis import analyze, chest_phantom
    >>> vol, _ = chest_phantom(nodule_radius_mm=9.0)
    >>> out = render_overlay(vol, analyze(vol), pathlib.Path(tempfile.mkdtemp()) / "o.png")
    >>> out.suffix
    '.png'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ctlens.analysis.findings import Findings
from ctlens.core.volume import Volume
from ctlens.preprocess.display import oblique_degrees, to_display
from ctlens.preprocess.slice_render import (
    BOX_COLOUR,
    LABEL_MIN_PX,
    SLICE_LABEL_COLOUR,
    draw_label,
    label_font,
    place_label,
    render_plane,
    text_size,
)

__all__ = ["LABEL_MIN_PX", "label_font", "place_label", "render_overlay"]

_REGION_WINDOWS = {"chest": "lung", "head": "brain"}
"""CT window (name in :data:`~ctlens.preprocess.windows.WINDOWS`) per body region; others: soft_tissue."""


def _text_rect(draw: ImageDraw.ImageDraw, at: tuple[int, int], text: str, font) -> tuple[int, int, int, int]:  # noqa: ANN001
    w, h = text_size(draw, text, font)
    return (at[0], at[1], at[0] + w, at[1] + h)


def _pick_slices(findings: Findings, nz: int, n: int) -> list[int]:
    picked: list[int] = []
    for c in findings.candidates:
        z = int(round(c.centre_voxel[0]))
        if 0 <= z < nz and z not in picked:
            picked.append(z)
        if len(picked) >= n // 2:
            break
    pool = np.arange(nz)
    if findings.roi_mask is not None and findings.roi_mask.shape[0] == nz and findings.roi_mask.any():
        pool = np.flatnonzero(findings.roi_mask.any(axis=(1, 2)))
    for z in pool[np.linspace(0, len(pool) - 1, max(1, n)).round().astype(int)]:
        if len(picked) >= n:
            break
        if int(z) not in picked:
            picked.append(int(z))
    return sorted(picked)


def render_overlay(
    volume: Volume | np.ndarray, findings: Findings, path: str | Path, *, n_slices: int = 8, tile: int = 256
) -> Path:
    """Write the overlay montage PNG to ``path`` (atomically) and return the path.

    ``volume`` in any storage order (it is drawn in display order, as ``findings`` were made); a plain array is
    taken as display-ordered with square pixels.
    """
    from ctlens.io.files import atomic_output

    if isinstance(volume, Volume):
        source: Volume | np.ndarray = to_display(volume)
        oblique = oblique_degrees(volume)
    else:
        arr = np.asarray(volume)
        source, oblique = (arr[None] if arr.ndim == 2 else arr), 0.0
    shape = source.shape
    is_ct = isinstance(volume, Volume) and volume.modality == "CT" and findings.region != "image2d"
    window = _REGION_WINDOWS.get(findings.region, "soft_tissue") if is_ct else "percentile"
    heat = findings.heatmap if findings.heatmap is not None and findings.heatmap.shape == shape else None
    roi = findings.roi_mask if findings.roi_mask is not None and findings.roi_mask.shape == shape else None
    nz = shape[0]
    slices = _pick_slices(findings, nz, min(n_slices, nz))
    font = label_font(tile)
    tiles = []
    for z in slices:
        pixels = render_plane(source, z, window=window, modality="CT" if is_ct else "OT", heatmap=heat, roi=roi,
                              longest=tile)  # fmt: skip
        img = Image.fromarray(pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2))
        sy, sx = img.height / shape[1], img.width / shape[2]
        draw = ImageDraw.Draw(img)
        width = max(1, round(tile / 200))
        caption = f"slice {z + 1}/{nz}"
        taken = [_text_rect(draw, (3, 3), caption, font)]
        draw_label(draw, taken[0], caption, font, SLICE_LABEL_COLOUR)
        labels = []
        for rank, c in enumerate(findings.candidates, start=1):
            box = c.slice_boxes.get(z)
            if box is None and c.slice_range[0] <= z <= c.slice_range[1]:
                box = (c.bbox[1], c.bbox[2], c.bbox[4], c.bbox[5])
            if box is None:
                continue
            y0, x0 = round(box[0] * sy), round(box[1] * sx)
            y1, x1 = round((box[2] + 1) * sy) - 1, round((box[3] + 1) * sx) - 1  # inclusive voxel bounds
            draw.rectangle([x0 - 2, y0 - 2, x1 + 2, y1 + 2], outline=BOX_COLOUR, width=width)
            labels.append(((x0 - 2, y0 - 2, x1 + 2, y1 + 2), f"{rank}:{c.score:.2f}"))
        for anchor, text in labels:  # after every box, so a label may cover a box edge but never another label
            rect = place_label(anchor, text_size(draw, text, font), taken, img.size)
            taken.append(rect)
            draw_label(draw, rect, text, font, BOX_COLOUR)
        tiles.append(img)
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    w = max(t.width for t in tiles)
    h = max(t.height for t in tiles)
    what = f"{findings.region} (OBLIQUE {oblique:.0f} deg, nearest axes)" if oblique else findings.region
    title = f"{what}: {len(findings.candidates)} candidate(s); yellow boxes, green ROI; A top, patient L right"
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    if text_size(measure, title, font)[0] > cols * w - 6:  # one narrow tile: the legend does not fit
        title = title.split(";")[0]
    band = text_size(measure, title, font)[1] + 4
    sheet = Image.new("RGB", (cols * w, rows * h + band))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * h + band))
    sheet_draw = ImageDraw.Draw(sheet)
    draw_label(sheet_draw, _text_rect(sheet_draw, (3, 1), title, font), title, font, (255, 255, 255))
    path = Path(path)
    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return path
