"""Overlay montage PNG of :class:`~ctlens.analysis.findings.Findings`: ROI contours, candidate boxes, heatmap.

Each tile is one slice in a display window (lung for chest, brain for head, min-max otherwise), with the
heatmap blended in red/yellow (alpha proportional to the value), the ROI outline in green and each
candidate's in-plane box in yellow with its rank and score. Labels are drawn on the output tile at a readable
size (text at least 12 px high at 100 %, growing with ``tile``; Pillow's bundled TrueType font) and moved
apart when they would overlap. Slices: those through the top candidates first, then slices spread over the
ROI. Array row 0 is at the top, column 0 on the left (radiological view for an LPS-ordered DICOM array: the
patient's right on the image's left).

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
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ctlens.analysis.findings import Findings
from ctlens.core.volume import Volume
from ctlens.preprocess.windows import to_display_uint8, window_limits

__all__ = ["LABEL_MIN_PX", "label_font", "place_label", "render_overlay"]

_REGION_WINDOWS = {"chest": "lung", "head": "brain"}
"""CT window (name in :data:`~ctlens.preprocess.windows.WINDOWS`) per body region; others: soft_tissue."""


def _gray(slice_: np.ndarray, region: str, is_ct: bool) -> np.ndarray:
    a = slice_.astype(np.float32)
    if is_ct:
        return to_display_uint8(a, *window_limits(_REGION_WINDOWS.get(region, "soft_tissue")))
    finite = a[np.isfinite(a)]
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 0.0)
    return to_display_uint8(a, float(lo), float(hi))


LABEL_MIN_PX = 12
"""Smallest height (pixels at 100 %) of the label text's digits."""


def label_font(tile: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The label font for a ``tile``-pixel tile: digits >= :data:`LABEL_MIN_PX` high, growing with the tile.

    Example:
        >>> font = label_font(256)
        >>> box = font.getbbox("1:0.54")
        >>> box[3] - box[1] >= LABEL_MIN_PX
        True
    """
    size = max(18, round(tile * 0.07))  # 18 px TrueType: digits 13 px high
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or without FreeType: the small bitmap font
        return ImageFont.load_default()


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(
    anchor: tuple[int, int, int, int],
    size: tuple[int, int],
    taken: list[tuple[int, int, int, int]],
    bounds: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Where a ``size`` (width, height) label for the box ``anchor`` (x0, y0, x1, y1) goes: above the box, else
    below it, else shifted down in steps of its height, never over a rectangle in ``taken``; inside ``bounds``.

    Example:
        >>> first = place_label((10, 40, 30, 60), (24, 14), [], (100, 100))
        >>> first
        (10, 24, 34, 38)
        >>> second = place_label((12, 42, 32, 62), (24, 14), [first], (100, 100))
        >>> _overlaps(first, second)
        False
    """
    w, h = size
    width, height = bounds
    x = int(min(max(anchor[0], 0), max(width - w, 0)))
    tops = [anchor[1] - h - 2, anchor[3] + 2]
    tops += [anchor[1] - h - 2 + k * (h + 2) for k in range(2, max(2, height // max(h, 1)) + 2)]
    tops += [anchor[1] - h - 2 - k * (h + 2) for k in range(1, max(2, height // max(h, 1)) + 2)]
    for top in tops:
        y = int(min(max(top, 0), max(height - h, 0)))
        rect = (x, y, x + w, y + h)
        if not any(_overlaps(rect, other) for other in taken):
            return rect
    y = int(min(max(tops[0], 0), max(height - h, 0)))
    return (x, y, x + w, y + h)


def _draw_label(draw: ImageDraw.ImageDraw, rect: tuple[int, int, int, int], text: str, font, colour) -> None:  # noqa: ANN001
    draw.rectangle(rect, fill=(0, 0, 0))
    left, top = font.getbbox(text)[:2]
    draw.text((rect[0] + 2 - left, rect[1] + 1 - top), text, fill=colour, font=font)


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:  # noqa: ANN001
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left + 4, bottom - top + 2


def _text_rect(draw: ImageDraw.ImageDraw, at: tuple[int, int], text: str, font) -> tuple[int, int, int, int]:  # noqa: ANN001
    w, h = _text_size(draw, text, font)
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
    """Write the overlay montage PNG to ``path`` (atomically) and return the path."""
    from ctlens.io.files import atomic_output

    arr = volume.array if isinstance(volume, Volume) else np.asarray(volume)
    if arr.ndim == 2:
        arr = arr[None]
    is_ct = isinstance(volume, Volume) and volume.modality == "CT" and findings.region != "image2d"
    nz = arr.shape[0]
    slices = _pick_slices(findings, nz, min(n_slices, nz))
    font = label_font(tile)
    tiles = []
    for z in slices:
        g = _gray(arr[z], findings.region, is_ct)
        rgb = np.stack([g] * 3, axis=-1).astype(np.float32)
        if findings.heatmap is not None and findings.heatmap.shape == arr.shape:
            h = np.clip(findings.heatmap[z], 0, 1)[..., None]
            colour = np.concatenate([np.ones_like(h), h, np.zeros_like(h)], axis=-1) * 255
            alpha = 0.6 * h
            rgb = rgb * (1 - alpha) + colour * alpha
        if findings.roi_mask is not None and findings.roi_mask.shape == arr.shape:
            m = findings.roi_mask[z]
            rgb[m & ~ndimage.binary_erosion(m, iterations=max(1, arr.shape[1] // 256))] = (0, 220, 0)
        img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
        scale = tile / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        draw = ImageDraw.Draw(img)
        width = max(1, round(tile / 200))
        taken = [_text_rect(draw, (3, 3), f"z={z}", font)]
        _draw_label(draw, taken[0], f"z={z}", font, (0, 255, 255))
        labels = []
        for rank, c in enumerate(findings.candidates, start=1):
            box = c.slice_boxes.get(z)
            if box is None and c.slice_range[0] <= z <= c.slice_range[1]:
                box = (c.bbox[1], c.bbox[2], c.bbox[4], c.bbox[5])
            if box is None:
                continue
            y0, x0 = round(box[0] * scale), round(box[1] * scale)
            y1, x1 = round((box[2] + 1) * scale) - 1, round((box[3] + 1) * scale) - 1  # inclusive voxel bounds
            draw.rectangle([x0 - 2, y0 - 2, x1 + 2, y1 + 2], outline=(255, 255, 0), width=width)
            labels.append(((x0 - 2, y0 - 2, x1 + 2, y1 + 2), f"{rank}:{c.score:.2f}"))
        for anchor, text in labels:  # after every box, so a label may cover a box edge but never another label
            rect = place_label(anchor, _text_size(draw, text, font), taken, img.size)
            taken.append(rect)
            _draw_label(draw, rect, text, font, (255, 255, 0))
        tiles.append(img)
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    w = max(t.width for t in tiles)
    h = max(t.height for t in tiles)
    title = f"{findings.region}: {len(findings.candidates)} candidate(s); yellow boxes, green ROI"
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    if _text_size(measure, title, font)[0] > cols * w - 6:  # one narrow tile: the legend does not fit
        title = title.split(";")[0]
    band = _text_size(measure, title, font)[1] + 4
    sheet = Image.new("RGB", (cols * w, rows * h + band))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * h + band))
    sheet_draw = ImageDraw.Draw(sheet)
    _draw_label(sheet_draw, _text_rect(sheet_draw, (3, 1), title, font), title, font, (255, 255, 255))
    path = Path(path)
    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return path
