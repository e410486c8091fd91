"""Archive routes: ``/api/archive`` (status, search, analyse) and ``/api/studies/{id}/archive`` (link, send back).

Thin handlers over :mod:`ctlens.api.archive`; they run in the thread pool (archive calls block on the network).

Example:
    >>> sorted(r.path for r in router.routes)[:2]
    ['/api/archive', '/api/archive/studies']
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse

from ctlens.api import archive
from ctlens.api.deps import Caller, Ctx
from ctlens.api.problems import ERRORS, PROBLEM
from ctlens.api.schemas import (
    UID_PATTERN,
    AnalyzeRequest,
    ArchiveSeries,
    ArchiveSeriesList,
    ArchiveStatus,
    ArchiveStudies,
    ArchiveStudy,
    SendRequest,
    SentResults,
    Study,
    StudyArchiveLink,
)

router = APIRouter(tags=["archive"])

UID = UID_PATTERN
ARCHIVE_ERRORS = {
    409: {"description": "not possible for this study now", **PROBLEM},
    502: {"description": "the archive failed or refused", **PROBLEM},
    504: {"description": "the archive timed out", **PROBLEM},
} | ERRORS


@router.get("/api/archive", response_model=ArchiveStatus, responses=ERRORS, summary="Whether an archive is set")
def archive_status(ctx: Ctx, caller: Caller):
    return ArchiveStatus(configured=archive.configured(ctx.settings))


@router.get(
    "/api/archive/studies",
    response_model=ArchiveStudies,
    responses=ARCHIVE_ERRORS,
    summary="Search the archive (QIDO-RS): study UID, date, modalities, counts; no names, IDs or descriptions",
)
def archive_studies(
    ctx: Ctx,
    caller: Caller,
    date: str | None = Query(None, pattern=r"^(\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8})$", description="YYYYMMDD or range"),
    modality: str | None = Query(None, pattern=r"^[A-Z0-9]{1,16}$"),
    accession: str | None = Query(None, min_length=1, max_length=16, pattern=r"^[^\\\x00-\x1f]+$"),
    study_uid: str | None = Query(None, max_length=64, pattern=UID),
    limit: int = Query(100, ge=1, le=1000),
):
    rows = archive.search_studies(
        ctx.settings, date=date, modality=modality, accession=accession, study_uid=study_uid, limit=limit
    )
    ctx.store.audit(caller.id, "archive", None, "search")
    return ArchiveStudies(studies=[ArchiveStudy(**row) for row in rows])


@router.get(
    "/api/archive/studies/{study_uid}/series",
    response_model=ArchiveSeriesList,
    responses=ARCHIVE_ERRORS,
    summary="The series of one archive study (QIDO-RS): UID, modality, number, instances",
)
def archive_series(ctx: Ctx, caller: Caller, study_uid: str = Path(max_length=64, pattern=UID)):
    rows = archive.list_series(ctx.settings, study_uid)
    return ArchiveSeriesList(study_uid=study_uid, series=[ArchiveSeries(**row) for row in rows])


@router.post(
    "/api/archive/studies/{study_uid}/analyze",
    response_model=Study,
    responses={202: {"description": "accepted: being analysed (a job for big series)", "model": Study}, 413: PROBLEM}
    | ARCHIVE_ERRORS,
    summary="Retrieve an archive series (WADO-RS) and analyse it like an upload (cached by content)",
)
def archive_analyze(
    ctx: Ctx,
    caller: Caller,
    study_uid: str = Path(max_length=64, pattern=UID),
    body: AnalyzeRequest | None = Body(None),
):
    series_uid = body.series_uid if body is not None else None
    status, study = archive.analyze_archive_study(ctx, caller.id, study_uid, series_uid)
    return JSONResponse(study.model_dump(mode="json"), status_code=status)


@router.get(
    "/api/studies/{study_id}/archive",
    response_model=StudyArchiveLink,
    responses=ERRORS,
    summary="Whether the study came from the archive (and so its results can be sent back)",
)
def study_archive_link(study_id: str, ctx: Ctx, caller: Caller):
    link = archive.study_link(ctx, caller.id, study_id)
    if link is None:
        return StudyArchiveLink(study_id=study_id, from_archive=False)
    return StudyArchiveLink(study_id=study_id, from_archive=True, study_uid=link.study_uid, series_uid=link.series_uid)


@router.post(
    "/api/studies/{study_id}/archive",
    response_model=SentResults,
    responses=ARCHIVE_ERRORS,
    summary="Send the study's results (DICOM SEG + SR) back to the archive it came from (STOW-RS)",
)
def study_send_results(
    study_id: str,
    ctx: Ctx,
    caller: Caller,
    body: SendRequest | None = Body(None),
) -> Any:
    heatmap = body.heatmap if body is not None else False
    return archive.send_results(ctx, caller.id, study_id, heatmap=heatmap)
