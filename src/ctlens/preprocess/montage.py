"""Labelled PNG montages of 3-D arrays: a grid of slices (columns) x channels (rows), numpy + Pillow only.

Each row is one named array (a CT window, ``mri``, a mask ...), each column one slice along ``axis``,
the same slice indices in every row. Arrays in ``[0, 1]`` are shown as they are (0 black, 1 white); other
arrays are min-max scaled per row. Tiles are cut by the one slice renderer under the display rule
(:mod:`ctlens.preprocess.display`): give ``volume`` (the grid the arrays lie on, e.g. prepare's RPI model grid)
and every array is drawn with anterior at the top and the patient's left on the image's right, with square
millimetres; without it the arrays are taken as display-ordered (``[z, y, x]`` = S, P, L). Columns are labelled
with 1-based slice numbers (``slices`` and :func:`montage_slices` are 0-based array indices).

Example:
    >>> import numpy as np
    >>> ramp = np.broadcast_to(np.linspace(0, 1, 32, dtype=np.float32), (8, 32, 32))
    >>> image = render_montage({"brain": ramp, "bone": 1 - ramp}, n_slices=3, tile=64)
    >>> image.size, image.mode
    ((232, 150), 'L')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ctlens.core.volume import Volume
from ctlens.preprocess.display import PLANES, cut, display_array, oblique_degrees, pixel_spacing
from ctlens.preprocess.slice_render import square_size, window_pixels

__all__ = ["montage_slices", "render_montage", "save_montage"]

_LABEL_W = 34
"""Pixels left of the tiles for the row labels (names are written vertically when longer)."""
_HEADER_H = 18
_GAP = 2


def montage_slices(n_total: int, n_slices: int = 6, mask: np.ndarray | None = None, axis: int = 0) -> list[int]:
    """``n_slices`` slice indices spread evenly over the slices (over those the ``mask`` touches, if given).

    Example:
        >>> montage_slices(40, 4)
        [5, 15, 25, 35]
        >>> import numpy as np; m = np.zeros((40, 2, 2), np.uint8); m[10:20] = 1
        >>> montage_slices(40, 3, mask=m)
        [11, 15, 18]
    """
    if n_total < 1 or n_slices < 1:
        raise ValueError(f"need at least one slice and n_slices >= 1, got {n_total}, {n_slices}")
    lo, hi = 0, n_total - 1
    if mask is not None:
        other = tuple(a for a in range(mask.ndim) if a != axis)
        filled = np.flatnonzero(np.asarray(mask).any(axis=other))
        if filled.size:
            lo, hi = int(filled[0]), int(filled[-1])
    count = min(n_slices, hi - lo + 1)
    # centres of ``count`` equal bins over [lo, hi]
    positions = lo + (np.arange(count) + 0.5) * (hi - lo + 1) / count - 0.5
    return sorted({int(np.floor(p + 0.5)) for p in positions})


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def render_montage(
    arrays: Mapping[str, np.ndarray],
    n_slices: int = 6,
    *,
    axis: int = 0,
    slices: Sequence[int] | None = None,
    mask: np.ndarray | None = None,
    tile: int = 160,
    title: str | None = None,
    volume: Volume | None = None,
) -> Image.Image:
    """A greyscale montage: one row per named array, one column per slice along display ``axis``, labelled.

    ``volume``: the grid of the arrays (any storage order; they are shown in display order, square millimetres,
    and ``axis``, ``slices`` and ``mask`` refer to the display order: 0 axial, 1 coronal, 2 sagittal).
    ``slices`` (default :func:`montage_slices` over ``mask``, else over the whole axis) picks the slices;
    every tile is scaled (nearest neighbour) so its longer side is ``tile`` pixels. The rows are labelled
    with the array names, the columns with 1-based slice numbers, and ``title`` goes on top.

    Example:
        >>> import numpy as np
        >>> render_montage({"a": np.zeros((4, 10, 20))}, slices=[1, 2], tile=40).size
        (118, 40)
    """
    if not arrays:
        raise ValueError("render_montage needs at least one array")
    shapes = {np.shape(a) for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"all arrays must be 3-D with the same shape, got {sorted(shapes)}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    if volume is not None:
        arrays = {name: display_array(volume, np.asarray(a)) for name, a in arrays.items()}
        mask = None if mask is None else display_array(volume, np.asarray(mask))
        if oblique_degrees(volume) and title:
            title = f"{title} (OBLIQUE {oblique_degrees(volume):.0f} deg)"
    shape = np.shape(next(iter(arrays.values())))
    chosen = list(slices) if slices is not None else montage_slices(shape[axis], n_slices, mask, axis)
    if not chosen or min(chosen) < 0 or max(chosen) >= shape[axis]:
        raise ValueError(f"slices must lie in 0..{shape[axis] - 1}, got {chosen}")
    plane = [n for a, n in enumerate(shape) if a != axis]
    mm = pixel_spacing(volume, PLANES[axis]) if volume is not None else (1.0, 1.0)
    tile_h, tile_w = square_size(plane, mm, longest=tile)
    top = _HEADER_H + (_HEADER_H if title else 0)
    width = _LABEL_W + len(chosen) * (tile_w + _GAP)
    height = top + len(arrays) * (tile_h + _GAP)
    canvas = Image.new("L", (width, height), color=0)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    if title:
        draw.text((4, 3), title[:120], fill=255, font=font)
    for col, index in enumerate(chosen):
        draw.text((_LABEL_W + col * (tile_w + _GAP) + 3, top - _HEADER_H + 3), f"#{index + 1}", fill=255, font=font)
    for row, (name, arr) in enumerate(arrays.items()):
        y0 = top + row * (tile_h + _GAP)
        values = window_pixels(np.asarray(arr, dtype=np.float32), "unit")
        for col, index in enumerate(chosen):
            piece = cut(values, index, PLANES[axis])
            img = Image.fromarray(np.ascontiguousarray(piece), mode="L").resize((tile_w, tile_h), Image.NEAREST)
            canvas.paste(img, (_LABEL_W + col * (tile_w + _GAP), y0))
        label = Image.new("L", (tile_h, _LABEL_W - 4), color=0)
        label_draw = ImageDraw.Draw(label)
        text = name[:24]
        label_draw.text((max(2, (tile_h - label_draw.textlength(text, font=font)) / 2), 8), text, fill=255, font=font)
        canvas.paste(label.rotate(90, expand=True), (0, y0))
    return canvas


def save_montage(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], **options: object) -> Path:
    """Render with :func:`render_montage` (``options`` go to it); write the PNG atomically (temp, then rename).

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> out = save_montage(pathlib.Path(tempfile.mkdtemp()) / "m.png", {"a": np.zeros((4, 8, 8))}, tile=16)
        >>> out.suffix, out.stat().st_size > 0
        ('.png', True)
    """
    from ctlens.io.files import atomic_output

    out = Path(path)
    image = render_montage(arrays, **options)  # type: ignore[arg-type]
    with atomic_output(out) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return out
