"""Health routes: liveness (``/healthz``), readiness (``/readyz``: database and layers) and Prometheus ``/metrics``.

Liveness and readiness need no key (load balancers ask them); the metrics do.

Example:
    >>> [r.path for r in router.routes]
    ['/healthz', '/readyz', '/metrics']
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ctlens.api.deps import Caller, Ctx
from ctlens.api.problems import ERRORS
from ctlens.api.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz():
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, summary="Readiness: database and layers")
def readyz(ctx: Ctx):
    body = ctx.readiness()
    return JSONResponse(body.model_dump(), status_code=200 if body.database == "ok" else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}} | ERRORS,
    summary="Prometheus metrics (needs a key)",
)
def prometheus(ctx: Ctx, caller: Caller):
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")
