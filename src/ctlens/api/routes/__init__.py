"""The HTTP routes, one module per resource; each handler parses, calls one service function and answers.

=============  ==============================================================================
``studies``    ``POST /api/analyze``, list, read and delete studies
``jobs``       ``GET /api/jobs/{id}``: an analysis job's state
``exports``    a study's slices as PNG, its volume as NIfTI and ``.ctz``
``viewer``     the viewer's overlays (heatmap, labels) as NIfTI
``chat``       ``POST /api/chat``, a study's conversation and the LLM payload it would send
``images``     ``POST /process-image``: 2-D analysis of one image, nothing stored
``archive``    the DICOM archive: status, search, analyse a series, send results back
``health``     liveness, readiness and Prometheus metrics
``keys``       the calling key and its audit log
=============  ==============================================================================

Example:
    >>> [r.prefix for r in ROUTERS] == [""] * len(ROUTERS)
    True
"""

from __future__ import annotations

from ctlens.api.routes import archive, chat, exports, health, images, jobs, keys, studies, viewer

ROUTERS = (
    studies.router,
    jobs.router,
    exports.router,
    viewer.router,
    chat.router,
    images.router,
    archive.router,
    health.router,
    keys.router,
)
"""Every router, in the order the app includes them."""
