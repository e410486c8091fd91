"""Export routes: a study's slices as PNG (windowed, with overlays), its volume as NIfTI and as ``.ctz``.

The slice route is the service's hottest (a viewer scrolls through hundreds of slices): it is documented by
:func:`slice_png` and served by :func:`serve_slice_png` through a :class:`~ctlens.api.lean_route.LeanRoute`,
which does the same checks without FastAPI's per-request dependency solving.

Example:
    >>> sorted(r.path.rsplit("/", 1)[-1] for r in router.routes)
    ['compressed.ctz', 'volume.nii.gz', '{k}.png']
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from starlette.requests import Request

from ctlens.api.deps import Caller, Ctx, OwnedStudy, ReadyStudy
from ctlens.api.exports import export_file
from ctlens.api.lean_route import calling_key, lean_route
from ctlens.api.problems import ERRORS, PROBLEM
from ctlens.api.slice_png import OVERLAYS, WINDOW_NAMES, study_png
from ctlens.api.studies import owned_study
from ctlens.core.errors import ServiceError

router = APIRouter()


async def slice_png(
    study_id: str,
    k: int,
    study: OwnedStudy,
    ctx: Ctx,
    caller: Caller,
    window: str = Query("auto", description=f"one of {', '.join(WINDOW_NAMES)}"),
    overlay: str = Query("none", description=f"one of {', '.join(OVERLAYS)}"),
):
    """The route as FastAPI documents it; requests are served by :func:`serve_slice_png` (same checks, same PNG)."""
    return png_response(await study_png(ctx, caller.id, study, k, window, overlay))


def png_response(png: bytes) -> Response:
    """The slice route's answer: the PNG, cacheable by the caller's browser only."""
    return Response(png, media_type="image/png", headers=_PNG_HEADERS)


_PNG_HEADERS = {"Cache-Control": "private, max-age=3600"}
_INDEX = re.compile(r"[+-]?[0-9]{1,18}")


async def serve_slice_png(request: Request) -> Response:
    """:func:`slice_png` without FastAPI's per-request dependency solving (:mod:`ctlens.api.lean_route`): the
    caller (checked by the auth gate), one indexed SQLite read for the caller's study (404 when it is not theirs),
    then the slice index, window and overlay (422 / 404 as the renderer says)."""
    caller = await calling_key(request)
    ctx = request.app.state.ctx
    study = owned_study(ctx, caller.id, request.path_params["study_id"])
    k = request.path_params["k"]
    if not _INDEX.fullmatch(k):
        raise ServiceError(f"slice index {k[:40]!r} is not an integer", status=422)
    query = request.query_params
    png = await study_png(ctx, caller.id, study, int(k), query.get("window", "auto"), query.get("overlay", "none"))
    return png_response(png)


router.add_api_route(
    "/api/studies/{study_id}/slices/{k}.png",
    slice_png,
    methods=["GET"],
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the slice as PNG"}, 409: PROBLEM} | ERRORS,
    summary="One slice as PNG, windowed, optionally with the heatmap / ROI overlay",
    route_class_override=lean_route(serve_slice_png),
)


@router.get(
    "/api/studies/{study_id}/volume.nii.gz",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}}, 409: PROBLEM} | ERRORS,
    summary="The de-identified volume as NIfTI",
)
def volume_nifti(study_id: str, art: ReadyStudy, ctx: Ctx, caller: Caller):
    return export_file(ctx, caller.id, study_id, art, "volume.nii.gz")


@router.get(
    "/api/studies/{study_id}/compressed.ctz",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 409: PROBLEM, 503: PROBLEM} | ERRORS,
    summary="The volume in ctlens's lossless .ctz container",
)
def volume_ctz(study_id: str, art: ReadyStudy, ctx: Ctx, caller: Caller):
    return export_file(ctx, caller.id, study_id, art, "compressed.ctz")
