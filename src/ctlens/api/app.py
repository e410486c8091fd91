"""The FastAPI application: ``create_app(settings)``; ``ctlens serve`` runs it with uvicorn.

It assembles the service context, the job threads, the recovery sweeps (:mod:`ctlens.api.recovery`: one at
start-up, then one every :func:`sweep_interval` seconds), the routers (:mod:`ctlens.api.routes`), the problem handlers,
the web page, the offline docs and the ASGI middleware defined here (body limit, security headers).

Example:
    >>> import tempfile
    >>> from ctlens.core.settings import Settings
    >>> app = create_app(Settings(service_dir=tempfile.mkdtemp()), start_jobs=False)
    >>> "/api/analyze" in app.openapi()["paths"]
    True
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from ctlens.api import problems
from ctlens.api.api_docs import DOCS_CSP, DOCS_PATHS, install_docs
from ctlens.api.auth_gate import install_auth_gate
from ctlens.api.context import ServiceContext
from ctlens.api.jobs import JobRunner, run_job
from ctlens.api.metrics import MetricsMiddleware
from ctlens.api.problems import problem
from ctlens.api.recovery import Sweeper, sweep
from ctlens.api.routes import ROUTERS
from ctlens.core.settings import Settings, get_settings

logger = logging.getLogger("ctlens.api")
STATIC = Path(__file__).with_name("static")
MULTIPART_OVERHEAD = 1024 * 1024
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}


def sweep_interval(settings: Settings) -> float:
    """Seconds between recovery sweeps: five job leases, between 30 s and 5 min.

    Example:
        >>> sweep_interval(Settings(job_lease_seconds=60)), sweep_interval(Settings(job_lease_seconds=1))
        (300.0, 30.0)
    """
    return float(min(300.0, max(30.0, 5 * settings.job_lease_seconds)))


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over the upload limit (413), by header or while they stream in."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            response = problem(413, f"request body larger than the limit of {self.limit} bytes")
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    from ctlens.core.errors import ServiceError

                    raise ServiceError(f"request body larger than the limit of {self.limit} bytes", status=413)
            return message

        await self.app(scope, limited, send)


class SecurityHeaders:
    """Pure ASGI middleware: nosniff, no referrer, a strict CSP on the web page and one on the API docs."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        page = path == "/" or path.startswith("/static/")
        docs = path in DOCS_PATHS or path.startswith(DOCS_PATHS[-1])

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if page:
                    headers += [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                elif docs:
                    headers.append((b"content-security-policy", DOCS_CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def create_app(settings: Settings | None = None, *, start_jobs: bool = True) -> FastAPI:
    """Build the service. ``start_jobs=False`` leaves the background job threads off (for tests/doctests)."""
    from PIL import Image

    settings = settings or get_settings()
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    ctx = ServiceContext(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        sweeper = None
        if start_jobs:
            try:  # what a killed process left: raw uploads, half-written folders, stuck rows and jobs
                sweep(ctx)
            except Exception:
                logger.exception("start-up recovery sweep failed")
            sweeper = Sweeper(ctx, sweep_interval(settings))
            sweeper.start()
            ctx.runner = JobRunner(
                ctx.store,
                lambda job, progress: run_job(ctx, job, progress),
                threads=settings.job_workers,
                lease=settings.job_lease_seconds,
            )
            ctx.runner.start()
        yield
        if ctx.runner is not None:
            ctx.runner.stop()
        if sweeper is not None:
            sweeper.stop()
            ctx.mark.close()

    app = FastAPI(
        title="ctlens",
        version="0.1.0",
        summary="Upload, view, analyse and ask about CT scans; every route but health and the page needs an API key.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_docs(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    install_auth_gate(app)  # outermost: a request without a valid key is refused before its body is read
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (``uvicorn --factory ctlens.api.app:app_from_env``): settings from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app()
