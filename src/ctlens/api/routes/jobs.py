"""Job route: ``GET /api/jobs/{job_id}``, the state of the caller's analysis job (see :mod:`ctlens.api.jobs`).

Example:
    >>> [r.path for r in router.routes]
    ['/api/jobs/{job_id}']
"""

from __future__ import annotations

from fastapi import APIRouter

from ctlens.api.deps import Caller, Ctx
from ctlens.api.jobs import job_view
from ctlens.api.problems import ERRORS
from ctlens.api.schemas import Job

router = APIRouter()


@router.get("/api/jobs/{job_id}", response_model=Job, responses=ERRORS, summary="State of an analysis job")
def job_state(job_id: str, ctx: Ctx, caller: Caller):
    return job_view(ctx.store, caller.id, job_id)
