"""Study routes: ``POST /api/analyze`` (upload and analyse), list, read and delete the caller's studies.

Example:
    >>> sorted({r.path for r in router.routes})
    ['/api/analyze', '/api/studies', '/api/studies/{study_id}']
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from ctlens.api import intake, studies
from ctlens.api.deps import Caller, Ctx, OwnedStudy
from ctlens.api.problems import ERRORS, PROBLEM
from ctlens.api.schemas import Study, StudyList

router = APIRouter()

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
"""The multipart body of ``POST /api/analyze``, documented by hand (the handler reads the form itself)."""


@router.post(
    "/api/analyze",
    response_model=Study,
    responses={202: {"description": "accepted: a job analyses the study", "model": Study}, 413: PROBLEM, 415: PROBLEM}
    | ERRORS,
    openapi_extra=UPLOAD_BODY,
    summary="Upload a study and analyse it (cached by the SHA-256 of the content)",
)
async def analyze(request: Request, ctx: Ctx, caller: Caller):
    status, study = await intake.analyze_upload(request, ctx, caller.id)
    return study if status == 200 else JSONResponse(study.model_dump(mode="json"), status_code=status)


@router.get("/api/studies", response_model=StudyList, responses=ERRORS, summary="The caller's studies")
def list_studies(
    ctx: Ctx,
    caller: Caller,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
):
    return studies.list_studies(ctx, caller.id, limit, offset)


@router.get("/api/studies/{study_id}", response_model=Study, responses=ERRORS, summary="One study and its findings")
def get_study(study_id: str, study: OwnedStudy, ctx: Ctx, caller: Caller):
    ctx.store.audit(caller.id, "read", study_id)
    return studies.study_body(ctx, study)


@router.delete("/api/studies/{study_id}", status_code=204, responses=ERRORS, summary="Delete a study and its data")
def delete_study(study_id: str, ctx: Ctx, caller: Caller):
    studies.delete_study(ctx, caller.id, study_id)
    return Response(status_code=204)
