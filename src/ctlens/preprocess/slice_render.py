"""The one slice renderer: a display-oriented cut of a volume, windowed to uint8, with overlays, boxes and labels.

Every 2-D image ctlens shows a person or a language model is drawn here: the service's slice PNGs
(:mod:`ctlens.api.slice_png`), analysis overlays (:mod:`ctlens.analysis.overlays`), ``prepare`` montages
(:mod:`ctlens.preprocess.montage`) and LLM payload tiles (:mod:`ctlens.llm.payload`). The cut always follows
:mod:`ctlens.preprocess.display` (anterior at the top, patient left on image right, superior at the top of
coronal/sagittal cuts), whatever order the volume is stored in; a plain array is taken as already display-ordered.

Pieces, each usable alone:

* :func:`plane_pixels`: slice ``k`` of a volume (and of arrays on its grid: heatmap, ROI) in display order,
  plus its pixel size in mm;
* :func:`window_pixels`: values -> uint8 grey (a CT window, percentiles, min-max, ``[0, 1]`` as is, or
  ``"rgb"`` = lung / mediastinum / bone packed as R, G, B);
* :func:`compose`: grey + heatmap (inferno ramp, alpha proportional to the value) + ROI outline -> RGB;
* :func:`square_size`: the drawn size that gives square millimetres (the right aspect for thick slices);
* :func:`render_plane`: all of the above in one call; :func:`png_bytes` encodes without text chunks;
* :func:`label_font`, :func:`place_label`, :func:`draw_label`, :func:`text_size`: readable, non-overlapping labels.

Speed (the service draws a slice per request): 8- and 16-bit integer volumes (CT is int16) are windowed by a
65,536-entry table made by :func:`~ctlens.preprocess.windows.to_display_uint8` itself, and a uint8 heatmap is
blended by a table of every (grey, heat) pair made by the float32 rule itself, so both give the rule's bytes exactly
(tests/preprocess/test_slice_fast_paths.py) at a fraction of its cost; a heatmap or ROI covering part of a slice
(a finding) is blended and outlined within its bounding box only; the service encodes with
:func:`ctlens.preprocess.png_writer.encode_png`.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> from ctlens.preprocess.orientation import reorient
    >>> v = Volume(np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) * 40 - 400, spacing=(2.0, 1.0, 1.0))
    >>> a = render_plane(v, 1, window="soft_tissue")
    >>> b = render_plane(reorient(v, "RAI"), 1, window="soft_tissue")   # stored another way: same picture
    >>> a.shape, bool(np.array_equal(a, b))
    ((3, 4), True)
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ctlens.core.volume import Volume
from ctlens.preprocess.display import cut, display_array, pixel_spacing
from ctlens.preprocess.windows import WINDOWS, to_display_uint8, window_limits

__all__ = [
    "BOX_COLOUR",
    "HEAT_LUT",
    "LABEL_MIN_PX",
    "RGB_WINDOWS",
    "ROI_COLOUR",
    "SLICE_LABEL_COLOUR",
    "compose",
    "draw_label",
    "label_font",
    "place_label",
    "plane_pixels",
    "png_bytes",
    "render_plane",
    "square_size",
    "text_size",
    "window_pixels",
]

# A perceptually ordered dark-red-yellow-white ramp (anchors of matplotlib's "inferno", sampled at 0, .25, .5,
# .75, 1) linearly interpolated to 256 entries.
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)
HEAT_LUT = np.stack([np.interp(np.linspace(0, 4, 256), np.arange(5), _ANCHORS[:, c]) for c in range(3)], axis=1).astype(
    np.float32
)
"""256 RGB entries of the heatmap ramp."""
ROI_COLOUR = (0, 230, 118)
BOX_COLOUR = (255, 255, 0)
SLICE_LABEL_COLOUR = (0, 255, 255)
RGB_WINDOWS = ("lung", "mediastinum", "bone")
"""Windows packed into the red, green and blue channels for ``window="rgb"``."""
LABEL_MIN_PX = 12
"""Smallest height (pixels at 100 %) of a label's digits."""
HEAT_ALPHA = 0.65
"""Opacity of the heatmap at its peak (1.0); values below 5 % of the scale are not drawn."""


def plane_pixels(
    source: Volume | np.ndarray, k: int, plane: str = "axial", *grid_arrays: np.ndarray | None
) -> tuple[np.ndarray, tuple[float, float], list[np.ndarray | None]]:
    """Slice ``k`` (0-based) of ``source`` in display order, its ``(row, column)`` pixel size in mm, and the same cut
    of each of ``grid_arrays`` (heatmap, ROI ... on the source's grid; None stays None).

    A :class:`Volume` is reoriented with :func:`~ctlens.preprocess.display.display_array` (views, no copy of the
    volume); a plain array is taken as display-ordered with 1 mm pixels.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.arange(24).reshape(2, 3, 4), spacing=(5.0, 0.5, 0.5), direction=-np.eye(3))
        >>> pixels, mm, (same,) = plane_pixels(v, 0, "axial", v.array)
        >>> pixels.shape, mm, bool(np.array_equal(pixels, same))
        ((3, 2), (0.5, 5.0), True)
    """
    if isinstance(source, Volume):
        array = display_array(source)
        others = [None if a is None else display_array(source, a) for a in grid_arrays]
        mm = pixel_spacing(source, plane)
    else:
        array, others, mm = np.asarray(source), [None if a is None else np.asarray(a) for a in grid_arrays], (1.0, 1.0)
    pixels = cut(array, k, plane)
    return pixels, mm, [None if a is None else cut(a, k, plane) for a in others]


def window_pixels(values: np.ndarray, window: str | tuple[float, float] = "auto", modality: str = "CT") -> np.ndarray:
    """``values`` -> uint8 display pixels.

    ``window``: a CT window name (:data:`~ctlens.preprocess.windows.WINDOWS`), ``(low, high)``, ``"auto"``
    (soft tissue for CT, else ``"percentile"``), ``"percentile"`` (0.5-99.5 %), ``"minmax"``, ``"unit"``
    (``[0, 1]`` shown as is, otherwise min-max) or ``"rgb"`` (:data:`RGB_WINDOWS` as R, G, B; adds a last axis).

    Example:
        >>> import numpy as np
        >>> window_pixels(np.array([[-1350.0, 150.0]]), "lung").tolist()
        [[0, 255]]
        >>> window_pixels(np.array([[0.0, 0.5, 1.0]]), "unit").tolist(), window_pixels(np.zeros((2, 2)), "rgb").shape
        ([[0, 128, 255]], (2, 2, 3))
    """
    if isinstance(window, tuple):
        return _windowed(values, float(window[0]), float(window[1]))
    if window == "rgb":
        return np.stack([window_pixels(values, w) for w in RGB_WINDOWS], axis=-1)
    if window == "auto":
        window = "soft_tissue" if modality == "CT" else "percentile"
    if window in WINDOWS:
        return _windowed(values, *window_limits(window))
    a = np.asarray(values)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a.reshape(-1)
    if window == "percentile":
        lo, hi = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
    elif window in ("minmax", "unit"):
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if window == "unit" and (not finite.size or (lo >= 0 and hi <= 1)):
            lo, hi = 0.0, 1.0
    else:
        names = ", ".join(("auto", "percentile", "minmax", "unit", "rgb", *WINDOWS))
        raise ValueError(f"unknown window {window!r}; use one of {names} or (low, high)")
    return to_display_uint8(a, float(lo), float(hi))


def compose(
    grey: np.ndarray, heatmap: np.ndarray | None = None, roi: np.ndarray | None = None, roi_width: int = 1
) -> np.ndarray:
    """uint8 grey (or RGB) with the heatmap blended in and the ROI outlined; grey comes back unchanged without them.

    ``heatmap``: values in ``[0, 1]`` (float) or ``0..255`` (uint8); alpha = :data:`HEAT_ALPHA` x value.
    ``roi``: a mask whose edge (``roi_width`` pixels) is drawn in :data:`ROI_COLOUR`.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> out = compose(np.zeros((5, 5), np.uint8), roi=m)
        >>> out.shape, out[1, 1].tolist(), out[2, 2].tolist()
        ((5, 5, 3), [0, 230, 118], [0, 0, 0])
    """
    if heatmap is None and roi is None:
        return grey
    heat = None if heatmap is None else np.asarray(heatmap)
    if grey.dtype == np.uint8 and (heat is None or heat.dtype == np.uint8):
        return _compose_uint8(grey, heat, None if roi is None else np.asarray(roi) > 0, roi_width)
    return _compose_float(grey, heatmap, roi, roi_width)


def _compose_float(
    grey: np.ndarray, heatmap: np.ndarray | None, roi: np.ndarray | None, roi_width: int = 1
) -> np.ndarray:
    """:func:`compose` in float32: the rule itself (and the way for float heatmaps)."""
    rgb = grey.astype(np.float32) if grey.ndim == 3 else np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
    if heatmap is not None:
        h = np.asarray(heatmap)
        h = h.astype(np.float32) / 255.0 if h.dtype == np.uint8 else np.clip(np.nan_to_num(h, nan=0.0), 0.0, 1.0)
        alpha = (h * HEAT_ALPHA)[..., None]
        alpha[h < 0.05] = 0.0
        rgb = rgb * (1 - alpha) + HEAT_LUT[np.round(h * 255).astype(np.uint8)] * alpha
    if roi is not None:
        mask = np.asarray(roi) > 0
        rgb[mask & ~ndimage.binary_erosion(mask, iterations=max(1, roi_width))] = ROI_COLOUR
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _heat_table() -> np.ndarray:
    """``[grey * 256 + heat, channel]``: :func:`_compose_float` of every (grey, heat) pair of uint8 values.

    Each output byte depends only on its pixel's grey value and heat value, so looking it up here gives the float
    rule's bytes exactly (the table is made by the rule itself) at a fraction of its cost.
    """
    grey, heat = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    return _compose_float(grey, heat, None).reshape(256 * 256, 3)


@functools.lru_cache(maxsize=1)
def _first_visible_heat() -> int:
    """The smallest uint8 heat value that changes a pixel (the rule draws nothing under 5 %); 256 if none does."""
    table = _heat_table().reshape(256, 256, 3)
    invisible = (table == np.arange(256, dtype=np.uint8)[:, None, None]).all(axis=(0, 2))
    return 256 if invisible.all() else int(np.argmin(invisible))


def _roi_edge(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` steps of its outside (4-neighbours; outside the image counts as
    outside): ``mask & ~binary_erosion(mask, iterations=width)`` done with shifted views."""
    inner = mask
    for _ in range(max(1, width)):
        if not inner.any():
            break
        shrunk = inner.copy()
        shrunk[0, :] = shrunk[-1, :] = False
        shrunk[:, 0] = shrunk[:, -1] = False
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def _box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """The smallest ``(rows, columns)`` box holding every True pixel of 2-D ``mask``, grown by ``margin`` pixels
    (within the image); None when nothing is True."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    top, bottom = max(0, int(rows[0]) - margin), min(height, int(rows[-1]) + 1 + margin)
    left, right = max(0, int(cols[0]) - margin), min(width, int(cols[-1]) + 1 + margin)
    return slice(top, bottom), slice(left, right)


_BOX_SHARE = 0.5
"""Above this share of the image, a heatmap's box is blended whole (looking up every pixel is then cheaper)."""


def _blend_heat(grey: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """RGB of uint8 ``grey`` with uint8 ``heat`` blended in by the table (:func:`_heat_table`)."""
    if grey.ndim == 2:
        index = np.left_shift(grey, 8, dtype=np.uint16)
        index |= heat
        return np.take(_heat_table(), index, axis=0)
    # one table column per channel: channel c of a pixel depends on its grey[c] and its heat only
    index = np.left_shift(grey, 8, dtype=np.uint32)
    index |= heat[..., None]
    index *= 3
    index += np.arange(3, dtype=np.uint32)
    return np.take(_heat_table().reshape(-1), index)


def _compose_uint8(grey: np.ndarray, heat: np.ndarray | None, mask: np.ndarray | None, roi_width: int) -> np.ndarray:
    """:func:`compose` for uint8 grey (and uint8 heat) by table look-up: the same bytes as the float rule.

    Outside the box of the heatmap's visible values every pixel stays grey (the rule draws nothing there), and the
    ROI's outline lies within the ROI's box: a heatmap or ROI covering part of the slice (a finding) costs only
    its box.
    """
    box = None
    if heat is not None:
        first = _first_visible_heat()
        box = None if first > 255 else _box(heat >= first)
        if box is None:
            heat = None  # nothing of the heatmap shows on this slice (most slices): grey as RGB
    if heat is None:
        rgb = np.stack((grey, grey, grey), axis=-1) if grey.ndim == 2 else grey.copy()
    elif (box[0].stop - box[0].start) * (box[1].stop - box[1].start) > _BOX_SHARE * heat.size:
        rgb = _blend_heat(grey, heat)
    else:
        rgb = np.stack((grey, grey, grey), axis=-1) if grey.ndim == 2 else grey.copy()
        rgb[box] = _blend_heat(grey[box], heat[box])
    if mask is not None:
        around = _box(mask, margin=1)  # one outside pixel on every side: the outline inside is the same
        if around is not None:
            rgb[around][_roi_edge(mask[around], roi_width)] = ROI_COLOUR
    return rgb


@functools.lru_cache(maxsize=64)
def _window_table(dtype: str, lo: float, hi: float) -> np.ndarray:
    """:func:`~ctlens.preprocess.windows.to_display_uint8` of every value of a <= 16-bit integer ``dtype``,
    indexed by the value's bit pattern read as unsigned."""
    width = np.dtype(dtype).itemsize
    patterns = np.arange(1 << (8 * width), dtype=np.uint16 if width == 2 else np.uint8)
    return to_display_uint8(patterns.view(dtype), lo, hi)


def _windowed(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``to_display_uint8(values, lo, hi)``; for 8- and 16-bit integers (CT is int16) by table look-up."""
    a = np.asarray(values)
    if a.dtype.kind in "iu" and a.dtype.itemsize <= 2 and a.dtype.isnative and a.size >= 4096:
        table = _window_table(a.dtype.str, float(lo), float(hi))
        return np.take(table, a.view(np.uint16 if a.dtype.itemsize == 2 else np.uint8))
    return to_display_uint8(a, lo, hi)


def square_size(shape_hw: Sequence[int], spacing_rc: Sequence[float], longest: int | None = None) -> tuple[int, int]:
    """``(height, width)`` at which a ``shape_hw`` cut with ``spacing_rc`` mm pixels has square millimetres.

    Without ``longest`` the finer axis keeps its pixel count (square pixels come back unchanged); with it, the
    longer side becomes ``longest`` pixels.

    Example:
        >>> square_size((40, 512), (5.0, 0.7)), square_size((100, 100), (1.0, 1.0), longest=50)
        ((286, 512), (50, 50))
    """
    h_mm, w_mm = shape_hw[0] * float(spacing_rc[0]), shape_hw[1] * float(spacing_rc[1])
    if longest is None:
        if abs(spacing_rc[0] - spacing_rc[1]) <= 0.01 * max(spacing_rc):
            return int(shape_hw[0]), int(shape_hw[1])
        per_mm = 1.0 / min(spacing_rc)
    else:
        per_mm = longest / max(h_mm, w_mm)
    return max(1, round(h_mm * per_mm)), max(1, round(w_mm * per_mm))


def render_plane(
    source: Volume | np.ndarray,
    k: int,
    *,
    plane: str = "axial",
    window: str | tuple[float, float] = "auto",
    modality: str | None = None,
    heatmap: np.ndarray | None = None,
    roi: np.ndarray | None = None,
    square: bool = True,
    longest: int | None = None,
) -> np.ndarray:
    """uint8 pixels (``[h, w]`` grey or ``[h, w, 3]``) of slice ``k`` (0-based) of ``source`` in display order.

    ``heatmap`` / ``roi``: arrays on the source's grid (stored order), cut the same way. ``square``: resample to
    square millimetres (:func:`square_size`, ``longest`` pixels on the long side if given; nearest neighbour for
    the overlays, bilinear for the grey image).

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.zeros((4, 10, 20), np.int16), spacing=(1.0, 2.0, 1.0))
        >>> render_plane(v, 0).shape, render_plane(v, 0, plane="coronal", longest=10).shape
        ((20, 20), (2, 10))
    """
    if modality is None:
        modality = source.modality if isinstance(source, Volume) else "CT"
    values, mm, (heat, mask) = plane_pixels(source, k, plane, heatmap, roi)
    grey = window_pixels(np.asarray(values), window, modality)
    size = square_size(grey.shape[:2], mm, longest) if square else grey.shape[:2]
    if tuple(size) != grey.shape[:2]:
        grey = _resize(grey, size, Image.Resampling.BILINEAR)
        heat = None if heat is None else _resize(np.asarray(heat), size, Image.Resampling.NEAREST)
        mask = None if mask is None else _resize(np.asarray(mask).astype(np.uint8), size, Image.Resampling.NEAREST)
    return compose(grey, heat, mask)


def _resize(pixels: np.ndarray, size_hw: Sequence[int], method: Image.Resampling) -> np.ndarray:
    a = np.ascontiguousarray(pixels)
    if a.dtype not in (np.uint8,):
        a = a.astype(np.float32)
    return np.asarray(Image.fromarray(a).resize((int(size_hw[1]), int(size_hw[0])), method))


def png_bytes(pixels: np.ndarray | Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes of uint8 pixels (grey or RGB) or an image, with no text chunks (no metadata leaves with them).

    Example:
        >>> import numpy as np
        >>> png = png_bytes(np.zeros((4, 4), np.uint8))
        >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", png.count(b"tEXt")
        (True, 0)
    """
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels))
    image.info.clear()
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


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


def text_size(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> tuple[int, int]:
    """``(width, height)`` of the box :func:`draw_label` draws around ``text``.

    Example:
        >>> from PIL import Image, ImageDraw
        >>> w, h = text_size(ImageDraw.Draw(Image.new("RGB", (1, 1))), "slice 3 of 40", label_font(256))
        >>> w > h > LABEL_MIN_PX
        True
    """
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left + 4, bottom - top + 2


def draw_label(
    draw: ImageDraw.ImageDraw,
    rect: tuple[int, int, int, int],
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    colour: tuple[int, ...] | int,
) -> None:
    """``text`` in ``colour`` on a black box ``rect`` (from :func:`place_label` or :func:`text_size`).

    Example:
        >>> from PIL import Image, ImageDraw
        >>> img = Image.new("RGB", (80, 30), (90, 90, 90))
        >>> draw_label(ImageDraw.Draw(img), (0, 0, 60, 20), "slice 1", label_font(100), (255, 255, 0))
        >>> img.getpixel((0, 0)), img.getpixel((70, 25))
        ((0, 0, 0), (90, 90, 90))
    """
    draw.rectangle(rect, fill=(0, 0, 0) if draw.im.mode == "RGB" else 0)
    left, top = font.getbbox(text)[:2]
    draw.text((rect[0] + 2 - left, rect[1] + 1 - top), text, fill=colour, font=font)
