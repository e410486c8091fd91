"""One slice of a volume as PNG (:func:`render_slice`) and the LRU of rendered slices (:class:`PngCache`).

A CT window (or automatic contrast), with the heatmap and the ROI outline blended in; used by the slice route,
the chat's key slices and ``POST /process-image``.

Example:
    >>> import numpy as np
    >>> png = render_slice(np.zeros((2, 8, 8), np.int16), 1, window="lung", modality="CT")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image
from scipy import ndimage

from ctlens.core.errors import ServiceError
from ctlens.preprocess.windows import WINDOWS, to_display_uint8, window_limits

OVERLAYS = ("none", "heatmap", "roi", "both")
WINDOW_NAMES = ("auto", *WINDOWS)

# A perceptually ordered dark-red-yellow-white ramp (anchors of matplotlib's "inferno", sampled at 0, .25, .5,
# .75, 1) linearly interpolated to 256 entries.
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)
HEAT_LUT = np.stack([np.interp(np.linspace(0, 4, 256), np.arange(5), _ANCHORS[:, c]) for c in range(3)], axis=1).astype(
    np.float32
)
ROI_COLOUR = np.array([0, 230, 118], np.float32)


def grey_slice(array: np.ndarray, k: int, window: str, modality: str) -> np.ndarray:
    """Slice ``k`` mapped to uint8 grey: a named CT window, or (``auto`` for non-CT) 0.5-99.5 percentiles."""
    plane = np.asarray(array[k])
    if window == "auto":
        window = "soft_tissue" if modality == "CT" else "percentile"
    if window in WINDOWS:
        lo, hi = window_limits(window)
    else:
        values = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
        lo, hi = np.percentile(values, (0.5, 99.5)) if values.size else (0, 1)
    return to_display_uint8(plane, lo, hi)


def render_slice(
    array: np.ndarray,
    k: int,
    *,
    window: str = "auto",
    modality: str = "CT",
    overlay: str = "none",
    heatmap: np.ndarray | None = None,
    roi: np.ndarray | None = None,
) -> bytes:
    """PNG bytes of slice ``k`` of ``array`` (``[z, y, x]``) with the requested overlay."""
    if not 0 <= k < array.shape[0]:
        raise ServiceError(f"slice {k} does not exist (the study has slices 0..{array.shape[0] - 1})", status=404)
    if window not in WINDOW_NAMES:
        raise ServiceError(f"unknown window {window!r}; use one of {', '.join(WINDOW_NAMES)}", status=422)
    if overlay not in OVERLAYS:
        raise ServiceError(f"unknown overlay {overlay!r}; use one of {', '.join(OVERLAYS)}", status=422)
    grey = grey_slice(array, k, window, modality)
    want_heat = overlay in ("heatmap", "both") and heatmap is not None
    want_roi = overlay in ("roi", "both") and roi is not None
    if not (want_heat or want_roi):
        image = Image.fromarray(grey, "L")
    else:
        rgb = np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
        if want_heat:
            h = np.asarray(heatmap[k])
            alpha = (h.astype(np.float32) / 255.0 * 0.65)[..., None]
            alpha[h < 13] = 0.0
            rgb = rgb * (1 - alpha) + HEAT_LUT[h] * alpha
        if want_roi:
            mask = np.asarray(roi[k]) > 0
            edge = mask & ~ndimage.binary_erosion(mask)
            rgb[edge] = ROI_COLOUR
        image = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


class PngCache:
    """A small thread-safe LRU of rendered slices (the viewer asks for the same ones again and again)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop(self, prefix: str) -> None:
        """Forget every slice of one content (its key's first element)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == prefix]:
                del self._items[key]
