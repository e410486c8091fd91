"""One slice of a study as PNG: drawn (:func:`render_slice`) and answered to the slice route (:func:`study_png`).

The pixels come from the one slice renderer (:func:`ctlens.preprocess.slice_render.render_plane`): the display rule
(anterior at the top, patient left on image right, slice 1 = most inferior), a CT window (or automatic contrast),
the heatmap and the ROI outline blended in. Used by the slice route, the chat's key slices and
``POST /process-image``. ``k`` is the 0-based array index of the display volume (the viewer shows it as
``slice k+1 of N``). The PNG is written by :func:`ctlens.preprocess.png_writer.encode_png` (row filter "Sub",
ISA-L or libdeflate: ~5x faster than Pillow at level 1, and no larger), and the route keeps what it rendered in
the process's :class:`~ctlens.api.slice_cache.SliceCache` (``ctx.pngs``).

Example:
    >>> import numpy as np
    >>> png = render_slice(np.zeros((2, 8, 8), np.int16), 1, window="lung", modality="CT")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ctlens.api.artifacts import load_artifacts
from ctlens.api.slice_cache import SliceCache, slice_key
from ctlens.api.studies import ready_result
from ctlens.core.errors import ServiceError
from ctlens.core.volume import Volume
from ctlens.preprocess.display import display_array
from ctlens.preprocess.png_writer import encode_png
from ctlens.preprocess.slice_render import render_plane
from ctlens.preprocess.windows import WINDOWS

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

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
    return encode_png(pixels)


RENDER_THREADS = max(2, os.cpu_count() or 2)
"""Worker threads drawing slices: one per core (the drawing releases the GIL in numpy and deflate; more threads
would only queue for the cores)."""
_RENDER_POOL = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="ctlens-slice")
"""The slices' own pool: handing work to it costs ~0.1 ms of CPU, ~0.2 ms less than ``run_in_threadpool``."""


PngCache = SliceCache
"""The service's cache of rendered slices (kept under this name for :class:`~ctlens.api.context.ServiceContext`)."""


async def study_png(ctx: ServiceContext, owner: str, study: dict[str, Any], k: int, window: str, overlay: str) -> bytes:
    """Slice ``k`` of ``owner``'s study row ``study`` (already checked to be the caller's) as PNG.

    Viewing is audited once per key, study and ten minutes. A slice rendered before is answered from
    ``ctx.pngs`` without leaving the event loop; otherwise the study's artifacts (memory-mapped, kept open by
    :func:`~ctlens.api.artifacts.load_artifacts`) are read and the slice drawn in one of :data:`RENDER_THREADS`
    worker threads (409 while the study is being analysed, 404 for a slice that does not exist, 422 for an unknown
    window or overlay).
    """
    ctx.audit_view(owner, study["id"])
    key = slice_key(study["sha256"], owner, k, window, overlay)
    png = ctx.pngs.get(key)
    if png is None:

        def render() -> bytes:
            ready_result(ctx, study)
            art = load_artifacts(ctx.content_dir(study["sha256"]))
            return render_slice(
                art.volume.array,
                k,
                window=window,
                modality=art.volume.modality,
                overlay=overlay,
                heatmap=art.heatmap,
                roi=art.roi,
            )

        png = await asyncio.get_running_loop().run_in_executor(_RENDER_POOL, render)
        ctx.pngs.put(key, png)
    return png
