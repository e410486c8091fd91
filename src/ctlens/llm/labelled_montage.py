"""Labelled montages for LLM payloads: windowed CT tiles on a canvas, a label band and a scale bar per tile.

The tile pixels come from the one slice renderer (:mod:`ctlens.preprocess.slice_render`, display rule included);
this module only lays them out. Each tile is drawn in a cell: a 14 px band on top holds the label (1-based slice
number, position in mm, window) and a 1 cm scale bar; the image below it is never overlaid. PNGs are written by
Pillow without any text chunk (no ``pnginfo``), so no metadata leaves with the pixels.

Example:
    >>> import numpy as np
    >>> cell = TileDrawing(np.full((40, 60), 128, np.uint8), "#3 z=12.0 mm", px_per_mm=1.5)
    >>> png = encode_png(draw_montage([cell], canvas=(84, 56), grid=(1, 1), cell_size=(62, 56)))
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ctlens.preprocess.slice_render import RGB_WINDOWS, png_bytes
from ctlens.preprocess.windows import WINDOWS

__all__ = [
    "BAND_PX",
    "GUTTER_PX",
    "TileDrawing",
    "cell_origin",
    "draw_montage",
    "encode_png",
    "montage_size",
]

BAND_PX = 14
"""Height of the label band above each tile."""
GUTTER_PX = 2
"""Gap between neighbouring cells (none around the grid: a 512 px tile fills a 512 px image, one cost step)."""


@dataclass
class TileDrawing:
    """One tile to draw: ``pixels`` (uint8, ``[h, w]`` or ``[h, w, 3]``, already at display size) and its label."""

    pixels: np.ndarray
    label: str
    px_per_mm: float


@lru_cache(maxsize=4)
def _font(size: int = 11) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def resize_pixels(pixels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resample uint8 pixels to ``(h, w)`` (Lanczos, antialiased when shrinking)."""
    h, w = size_hw
    if pixels.shape[:2] == (h, w):
        return pixels
    img = Image.fromarray(pixels)
    return np.asarray(img.resize((w, h), Image.Resampling.LANCZOS))


def _scale_bar_mm(px_per_mm: float, room_px: int) -> int:
    for mm in (10, 5, 2, 1):
        if mm * px_per_mm <= room_px:
            return mm
    return 0


def montage_size(grid: tuple[int, int], cell_size: tuple[int, int]) -> tuple[int, int]:
    """Smallest canvas ``(W, H)`` for ``grid`` ``(cols, rows)`` cells of ``cell_size`` (each cell ends in a gutter).

    Example:
        >>> montage_size((1, 5), (512 + GUTTER_PX, 384 + BAND_PX + GUTTER_PX))
        (512, 1998)
    """
    return grid[0] * cell_size[0] - GUTTER_PX, grid[1] * cell_size[1] - GUTTER_PX


def cell_origin(index: int, cols: int, cell_size: tuple[int, int]) -> tuple[int, int]:
    """Top-left pixel ``(x, y)`` of cell ``index`` (row by row) in a montage of ``cols`` columns; its band starts here.

    Example:
        >>> cell_origin(4, 3, (100, 50))
        (100, 50)
    """
    return (index % cols) * cell_size[0], (index // cols) * cell_size[1]


def draw_montage(
    tiles: Sequence[TileDrawing],
    *,
    canvas: tuple[int, int],
    grid: tuple[int, int],
    cell_size: tuple[int, int],
) -> Image.Image:
    """Draw ``tiles`` row by row on a black ``canvas`` ``(W, H)`` with ``grid`` ``(cols, rows)`` cells of
    ``cell_size`` ``(w, h)`` (band included); returns a Pillow image (``L``, or ``RGB`` for RGB tiles)."""
    rgb = any(t.pixels.ndim == 3 for t in tiles)
    img = Image.new("RGB" if rgb else "L", canvas, 0)
    draw = ImageDraw.Draw(img)
    white = (255, 255, 255) if rgb else 255
    cols, _ = grid
    font = _font()
    for i, tile in enumerate(tiles):
        x0, y0 = cell_origin(i, cols, cell_size)
        pix = tile.pixels
        if rgb and pix.ndim == 2:
            pix = np.repeat(pix[..., None], 3, axis=-1)
        img.paste(Image.fromarray(pix), (x0, y0 + BAND_PX))
        tw = pix.shape[1]
        draw.text((x0 + 1, y0 + 1), tile.label, fill=white, font=font)
        label_w = int(draw.textlength(tile.label, font=font)) + 6
        mm = _scale_bar_mm(tile.px_per_mm, tw - label_w - 24)
        if mm:
            length = int(round(mm * tile.px_per_mm))
            xe = x0 + tw - 2
            yb = y0 + BAND_PX - 4
            draw.line([(xe - length, yb), (xe, yb)], fill=white, width=2)
            draw.line([(xe - length, yb - 3), (xe - length, yb + 1)], fill=white, width=1)
            draw.line([(xe, yb - 3), (xe, yb + 1)], fill=white, width=1)
            text = f"{mm} mm" if mm < 10 else "1 cm"
            draw.text((xe - length - int(draw.textlength(text, font=font)) - 3, y0 + 1), text, fill=white, font=font)
    return img


def encode_png(img: Image.Image) -> bytes:
    """PNG bytes with no ancillary text chunks (Pillow writes tEXt/iTXt/zTXt only when given ``pnginfo``).

    Example:
        >>> from PIL import Image
        >>> encode_png(Image.new("L", (4, 4))).count(b"tEXt")
        0
    """
    return png_bytes(img, compress_level=6)


def window_label(window: str) -> str:
    """``lung W1500/L-600`` style description of a window name (``rgb`` = the three packed windows)."""
    if window == "rgb":
        return "RGB = " + ", ".join(f"{c}: {window_label(w)}" for c, w in zip("RGB", RGB_WINDOWS, strict=True))
    if window not in WINDOWS:
        raise ValueError(f"unknown CT window {window!r}; known: {', '.join(WINDOWS)} or 'rgb'")
    width, level = WINDOWS[window]
    return f"{window} W{width:g}/L{level:g}"
