"""Labelled PNG montages of 3-D arrays: a grid of slices (columns) x channels (rows), numpy + Pillow only.

Each row is one named array (a CT window, ``mri``, a mask ...), each column one slice along ``axis``,
the same slice indices in every row. Arrays in ``[0, 1]`` are shown as they are (0 black, 1 white); other
arrays are min-max scaled per row. The slice is drawn with array row 0 at the top and array column 0 on
the left, so a ctlens RPI array (rows point Posterior, columns point Right) shows anterior at the top
and the patient's left on the image's left.

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

from ctlens.preprocess.windows import to_display_uint8

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


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    finite = a[np.isfinite(a)]
    in_unit = finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1)
    lo, hi = (0.0, 1.0) if in_unit else (float(finite.min()), float(finite.max()))
    return to_display_uint8(a, lo, hi)


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
) -> Image.Image:
    """A greyscale montage: one row per named array, one column per slice along ``axis``, labelled.

    ``slices`` (default :func:`montage_slices` over ``mask``, else over the whole axis) picks the slices;
    every tile is scaled (nearest neighbour) so its longer side is ``tile`` pixels. The rows are labelled
    with the array names, the columns with the slice indices, and ``title`` goes on top.

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
    shape = next(iter(shapes))
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    chosen = list(slices) if slices is not None else montage_slices(shape[axis], n_slices, mask, axis)
    if not chosen or min(chosen) < 0 or max(chosen) >= shape[axis]:
        raise ValueError(f"slices must lie in 0..{shape[axis] - 1}, got {chosen}")
    plane = [n for a, n in enumerate(shape) if a != axis]
    zoom = tile / max(plane)
    tile_h, tile_w = max(1, round(plane[0] * zoom)), max(1, round(plane[1] * zoom))
    top = _HEADER_H + (_HEADER_H if title else 0)
    width = _LABEL_W + len(chosen) * (tile_w + _GAP)
    height = top + len(arrays) * (tile_h + _GAP)
    canvas = Image.new("L", (width, height), color=0)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    if title:
        draw.text((4, 3), title[:120], fill=255, font=font)
    for col, index in enumerate(chosen):
        draw.text((_LABEL_W + col * (tile_w + _GAP) + 3, top - _HEADER_H + 3), f"#{index}", fill=255, font=font)
    for row, (name, arr) in enumerate(arrays.items()):
        y0 = top + row * (tile_h + _GAP)
        values = _to_uint8(arr)
        for col, index in enumerate(chosen):
            piece = np.take(values, index, axis=axis)
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
