"""Upload and analyse (``POST /api/analyze``), jobs, studies, slices and exports.

Example:
    >>> links("st_1").slice
    '/api/studies/st_1/slices/{k}.png'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from ctlens.api import services
from ctlens.api.artifacts import Artifacts, forget_artifacts, load_artifacts, stored_warnings
from ctlens.api.models import Job, JobRef, Study, StudyLinks, StudyList
from ctlens.api.processing import process_upload, refresh_zero_shot
from ctlens.api.render import OVERLAYS, WINDOW_NAMES, render_slice
from ctlens.api.security import Caller, require_key
from ctlens.api.store import new_id
from ctlens.api.uploads import StagedUpload, check_expansion, stage_uploads, upload_key
from ctlens.api.viewer import number_candidates, viewer_block
from ctlens.core.errors import CTLensError, ServiceError

logger = logging.getLogger("ctlens.api")
router = APIRouter()

PROBLEM = {"content": {"application/problem+json": {"schema": {"type": "object"}}}}
ERRORS = {
    401: {"description": "no or unknown API key", **PROBLEM},
    404: {"description": "not found (or another key's)", **PROBLEM},
    422: {"description": "invalid input", **PROBLEM},
    429: {"description": "rate limit", **PROBLEM},
}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one zip of DICOM, several DICOM files, one NIfTI / NRRD / MHA, "
                            "or one PNG / JPEG (the format is sniffed from the content)",
                        },
                        "series": {"type": "string", "description": "DICOM series: index, UID or description"},
                    },
                }
            }
        },
    }
}


def links(study_id: str) -> StudyLinks:
    """The URLs of one study's resources."""
    base = f"/api/studies/{study_id}"
    return StudyLinks(
        self=base,
        slice=f"{base}/slices/{{k}}.png",
        heatmap=f"{base}/slices/{{k}}.png?overlay=heatmap",
        roi=f"{base}/slices/{{k}}.png?overlay=roi",
        volume=f"{base}/volume.nii.gz",
        payload=f"{base}/payload",
        compressed=f"{base}/compressed.ctz",
        chat=f"{base}/chat",
        heatmap_volume=f"{base}/overlays/heatmap.nii.gz",
        labels_volume=f"{base}/overlays/labels.nii.gz",
    )


def study_body(ctx, study: dict[str, Any], *, cached: bool = False) -> Study:
    """The JSON of one study from its row and its content's cache entry."""
    result = ctx.cached_result(study["sha256"])
    if result is not None:
        entry = {"status": "ready", "error": None, "result": result}
    else:
        entry = ctx.store.content(study["sha256"]) or {"status": "failed", "error": "the study's data are gone"}
    body: dict[str, Any] = {
        "id": study["id"],
        "sha256": study["sha256"],
        "created": study["created"],
        "status": entry["status"],
        "cached": cached,
        "error": entry.get("error"),
        "links": links(study["id"]),
    }
    if entry["status"] == "ready" and isinstance(entry.get("result"), dict):
        body.update(entry["result"])
        body["findings"] = number_candidates(body.get("findings"))
        warnings = None if "reader_warnings" in body else stored_warnings(ctx.content_dir(study["sha256"]))
        body["viewer"] = viewer_block(entry["result"], warnings)
        if not body.get("has_heatmap"):
            body["links"] = body["links"].model_copy(update={"heatmap_volume": None})
    else:
        body["links"] = body["links"].model_copy(update={"heatmap_volume": None, "labels_volume": None})
    job = ctx.store.job_for_content(study["sha256"])
    if job is not None and job["owner"] == study["owner"] and entry["status"] != "ready":
        body["job"] = JobRef(id=job["id"], url=f"/api/jobs/{job['id']}")
    return Study(**body)


def _owned(ctx, caller: Caller, study_id: str) -> dict[str, Any]:
    study = ctx.store.study(caller.id, study_id)
    if study is None:
        raise ServiceError(f"no study {study_id!r}", status=404)
    return study


def _ready(ctx, caller: Caller, study_id: str):
    study = _owned(ctx, caller, study_id)
    if ctx.cached_result(study["sha256"]) is None:
        entry = ctx.store.content(study["sha256"]) or {}
        status = entry.get("status", "missing")
        raise ServiceError(f"study {study_id} is not ready (status: {status})", status=409)
    return study, load_artifacts(ctx.content_dir(study["sha256"]))


def _export(
    ctx,
    caller: Caller,
    study_id: str,
    name: str,
    write: Callable[[Artifacts, Path], None],
    media_type: str,
    suffix: str,
) -> FileResponse:
    """The study's file ``name`` (written once by ``write`` from its artifacts to a temp name, renamed), audited.

    ``write`` may raise a :class:`ServiceError` (say 404: nothing to export) before it writes anything.
    """
    study, art = _ready(ctx, caller, study_id)
    path = art.folder / name
    if not path.exists():
        tmp = art.folder / f".{new_id('t')}.{name}"
        try:
            write(art, tmp)
            tmp.rename(path)
        finally:
            tmp.unlink(missing_ok=True)
    ctx.store.audit(caller.id, "export", study_id, name)
    return FileResponse(path, media_type=media_type, filename=f"{study_id}{suffix}")


def run_job(ctx, job: dict[str, Any], progress) -> None:
    """Job body: process the staged upload named in the job's params, record the result."""
    params = json.loads(job["params"])
    staged = StagedUpload(
        folder=Path(params["folder"]),
        kind=params["kind"],
        input_path=Path(params["input_path"]),
        sha256=job["sha256"],
        nbytes=params["nbytes"],
        n_files=params["n_files"],
    )
    try:
        result = process_upload(
            staged,
            ctx.content_dir(job["sha256"]),
            series=params.get("series"),
            max_image_pixels=ctx.settings.max_image_pixels,
            progress=progress,
            clip_checkpoint=ctx.settings.clip_checkpoint,
        )
        ctx.remember_result(job["sha256"], result)
    except CTLensError as exc:
        ctx.store.fail_content(job["sha256"], exc.one_line(), getattr(exc, "status", 422))
        raise
    except Exception:
        ctx.store.fail_content(job["sha256"], "internal error while analysing", 500)
        raise
    finally:
        staged.discard()


@router.post(
    "/api/analyze",
    response_model=Study,
    responses={202: {"description": "accepted: a job analyses the study", "model": Study}, 413: PROBLEM, 415: PROBLEM}
    | ERRORS,
    openapi_extra=UPLOAD_BODY,
    summary="Upload a study and analyse it (cached by the SHA-256 of the content)",
)
async def analyze(request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx
    settings = ctx.settings
    try:
        form = await request.form(max_files=settings.max_upload_files, max_fields=16)
    except Exception as exc:  # malformed multipart bodies are client errors
        if isinstance(exc, CTLensError):
            raise
        raise ServiceError(f"cannot read the multipart body ({type(exc).__name__})", status=400) from None
    metrics = request.app.state.metrics
    try:
        uploads = [v for k, v in form.multi_items() if k in ("files", "file") and isinstance(v, UploadFile)]
        series = form.get("series")
        series = series if isinstance(series, str) and series else None
        caps = {"max_bytes": settings.max_upload_bytes, "max_files": settings.max_upload_files}
        sha = await upload_key(uploads, **caps)
        if sha is not None and series:  # another series of the same bytes is another content
            sha = series_key(sha, series)
        cached = ctx.cached_result(sha) if sha is not None else None
        if sha is not None and cached is not None:  # a cache hit: only new zero-shot scores may be written
            metrics.cache_hits.inc()
            checkpoint = settings.clip_checkpoint
            updated = await run_in_threadpool(refresh_zero_shot, cached, ctx.content_dir(sha), checkpoint)
            if updated is not None:
                ctx.remember_result(sha, updated)
            study = ctx.store.study_for(caller.id, sha)
            ctx.store.audit(caller.id, "upload", study["id"], "cached")
            return study_body(ctx, study, cached=True)
        staged = await stage_uploads(uploads, ctx.tmp_dir / new_id("up"), **caps)
    finally:
        await form.close()
    if series:
        staged.sha256 = series_key(staged.sha256, series)
    sha = staged.sha256
    try:
        check_expansion(staged, settings.max_archive_bytes)
    except BaseException:
        staged.discard()
        raise
    if not ctx.store.claim_content(sha, staged.nbytes):  # another request is analysing the same bytes
        staged.discard()
        body = study_body(ctx, ctx.store.study_for(caller.id, sha))
        return JSONResponse(body.model_dump(mode="json"), status_code=202)
    metrics.cache_misses.inc()
    if staged.nbytes > settings.job_threshold_bytes:
        study = ctx.store.study_for(caller.id, sha)
        params = {
            "folder": str(staged.folder),
            "kind": staged.kind,
            "input_path": str(staged.input_path),
            "nbytes": staged.nbytes,
            "n_files": staged.n_files,
            "series": series,
        }
        ctx.store.add_job(caller.id, study["id"], sha, params)
        ctx.store.audit(caller.id, "upload", study["id"], "job")
        if ctx.runner is not None:
            ctx.runner.notify()
        return JSONResponse(study_body(ctx, study).model_dump(mode="json"), status_code=202)
    try:
        result = await run_in_threadpool(
            process_upload,
            staged,
            ctx.content_dir(sha),
            series=series,
            max_image_pixels=settings.max_image_pixels,
            clip_checkpoint=settings.clip_checkpoint,
        )
    except BaseException:
        ctx.forget_result(sha)
        forget_artifacts(ctx.content_dir(sha))
        raise
    finally:
        staged.discard()
    ctx.remember_result(sha, result)
    study = ctx.store.study_for(caller.id, sha)
    ctx.store.audit(caller.id, "upload", study["id"])
    return study_body(ctx, study)


def series_key(sha: str, series: str) -> str:
    """Content key of one chosen series of an upload."""
    import hashlib

    return hashlib.sha256(f"{sha}\nseries={series}".encode()).hexdigest()


@router.get("/api/jobs/{job_id}", response_model=Job, responses=ERRORS, summary="State of an analysis job")
def job_state(job_id: str, request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx
    job = ctx.store.job(job_id, owner=caller.id)
    if job is None:
        raise ServiceError(f"no job {job_id!r}", status=404)
    return Job(
        id=job["id"],
        state=job["state"],
        progress=job["progress"],
        message=job["message"],
        error=job["error"],
        study_id=job["study_id"],
        study_url=f"/api/studies/{job['study_id']}",
    )


@router.get("/api/studies", response_model=StudyList, responses=ERRORS, summary="The caller's studies")
def list_studies(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
    caller: Caller = Depends(require_key),
):
    ctx = request.app.state.ctx
    rows = ctx.store.studies(caller.id, limit, offset)
    return StudyList(studies=[study_body(ctx, row) for row in rows])


@router.get("/api/studies/{study_id}", response_model=Study, responses=ERRORS, summary="One study and its findings")
def get_study(study_id: str, request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx
    study = _owned(ctx, caller, study_id)
    ctx.store.audit(caller.id, "read", study_id)
    return study_body(ctx, study)


@router.delete("/api/studies/{study_id}", status_code=204, responses=ERRORS, summary="Delete a study and its data")
def delete_study(study_id: str, request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx
    sha = ctx.store.delete_study(caller.id, study_id)
    if sha is None:
        raise ServiceError(f"no study {study_id!r}", status=404)
    if sha:  # no other key's study uses the content any more
        ctx.forget_result(sha)
        forget_artifacts(ctx.content_dir(sha))
        ctx.pngs.drop(sha)
    ctx.store.audit(caller.id, "delete", study_id)
    return Response(status_code=204)


@router.get(
    "/api/studies/{study_id}/slices/{k}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the slice as PNG"}, 409: PROBLEM} | ERRORS,
    summary="One slice as PNG, windowed, optionally with the heatmap / ROI overlay",
)
async def slice_png(
    study_id: str,
    k: int,
    request: Request,
    window: str = Query("auto", description=f"one of {', '.join(WINDOW_NAMES)}"),
    overlay: str = Query("none", description=f"one of {', '.join(OVERLAYS)}"),
    caller: Caller = Depends(require_key),
):
    ctx = request.app.state.ctx
    study = _owned(ctx, caller, study_id)
    ctx.audit_view(caller.id, study_id)
    key = (study["sha256"], k, window, overlay)
    png = ctx.pngs.get(key)
    if png is None:  # render in a worker thread; a cached slice is answered straight from the event loop

        def render() -> bytes:
            _, art = _ready(ctx, caller, study_id)
            return render_slice(
                art.volume.array,
                k,
                window=window,
                modality=art.volume.modality,
                overlay=overlay,
                heatmap=art.heatmap,
                roi=art.roi,
            )

        png = await run_in_threadpool(render)
        ctx.pngs.put(key, png)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/api/studies/{study_id}/volume.nii.gz",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}}, 409: PROBLEM} | ERRORS,
    summary="The de-identified volume as NIfTI",
)
def volume_nifti(study_id: str, request: Request, caller: Caller = Depends(require_key)):
    from ctlens.io import save

    def write(art: Artifacts, path: Path) -> None:
        save(art.volume, path)

    return _export(request.app.state.ctx, caller, study_id, "volume.nii.gz", write, "application/gzip", ".nii.gz")


@router.get(
    "/api/studies/{study_id}/compressed.ctz",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 409: PROBLEM, 503: PROBLEM} | ERRORS,
    summary="The volume in ctlens's lossless .ctz container",
)
def volume_ctz(study_id: str, request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx

    def write(art: Artifacts, path: Path) -> None:
        services.save_ctz(art.volume, path)

    return _export(ctx, caller, study_id, "compressed.ctz", write, "application/octet-stream", ".ctz")


@router.get(
    "/api/studies/{study_id}/payload",
    responses={409: PROBLEM, 503: PROBLEM} | ERRORS,
    summary="The de-identified LLM payload that a chat question about this study would send",
)
def study_payload(
    study_id: str,
    request: Request,
    question: str = Query("Describe the key findings.", max_length=4000),
    provider: str = Query("anthropic", pattern="^(anthropic|openai|gemini)$"),
    caller: Caller = Depends(require_key),
) -> dict[str, Any]:
    from ctlens.api.chat import payload_summary

    ctx = request.app.state.ctx
    study, art = _ready(ctx, caller, study_id)
    ctx.store.audit(caller.id, "export", study_id, f"payload:{provider}")
    return payload_summary(ctx, art, question, provider)
