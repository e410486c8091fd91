"""One slice of a study as PNG (:func:`render_slice`) and the LRU of rendered slices (:class:`PngCache`).

The pixels come from the one slice renderer (:func:`ctlens.preprocess.slice_render.render_plane`): the display rule
(anterior at the top, patient left on image right, slice 1 = most inferior), a CT window (or automatic contrast),
the heatmap and the ROI outline blended in. Used by the slice route, the chat's key slices and
``POST /process-image``. ``k`` is the 0-based array index of the display volume (the viewer shows it as
``slice k+1 of N``).

Example:
    >>> import numpy as np
    >>> png = render_slice(np.zeros((2, 8, 8), np.int16), 1, window="lung", modality="CT")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ctlens.core.errors import ServiceError
from ctlens.core.volume import Volume
from ctlens.preprocess.display import display_array
from ctlens.preprocess.slice_render import png_bytes, render_plane
from ctlens.preprocess.windows import WINDOWS

OVERLAYS = ("none", "heatmap", "roi", "both")
WINDOW_NAMES = ("auto", *WINDOWS)


def render_slice(
    array: np.ndarray | Volume,
    k: int,
    *,
    window: str = "auto",
    modality: str = "CT",
    overlay: str = "none",
    heatmap: np.ndarray | None = None,
    roi: np.ndarray | None = None,
) -> bytes:
    """PNG bytes of axial slice ``k`` (0-based) of a volume (any storage order) or a display-ordered ``[z, y, x]``
    array, with the requested overlay (``heatmap`` uint8 0-255 and ``roi`` on the same grid)."""
    n = int(display_array(array).shape[0] if isinstance(array, Volume) else array.shape[0])
    if not 0 <= k < n:
        raise ServiceError(f"slice index {k} does not exist (the study has {n} slices, indices 0..{n - 1})", status=404)
    if window not in WINDOW_NAMES:
        raise ServiceError(f"unknown window {window!r}; use one of {', '.join(WINDOW_NAMES)}", status=422)
    if overlay not in OVERLAYS:
        raise ServiceError(f"unknown overlay {overlay!r}; use one of {', '.join(OVERLAYS)}", status=422)
    want_heat = overlay in ("heatmap", "both") and heatmap is not None
    want_roi = overlay in ("roi", "both") and roi is not None
    pixels = render_plane(
        array,
        k,
        window=window,
        modality=modality,
        heatmap=heatmap if want_heat else None,
        roi=roi if want_roi else None,
    )
    return png_bytes(pixels, compress_level=1)


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
