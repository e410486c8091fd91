"""Key routes: the calling key (``/api/me``, how the page logs in) and its audit log (``/api/audit``).

Example:
    >>> [r.path for r in router.routes]
    ['/api/me', '/api/audit']
"""

from __future__ import annotations

from fastapi import APIRouter

from ctlens.api.deps import Caller, Ctx
from ctlens.api.problems import ERRORS
from ctlens.api.schemas import AuditLog, Me

router = APIRouter()


@router.get("/api/me", response_model=Me, responses=ERRORS, summary="The calling key (used by the page to log in)")
def me(caller: Caller):
    return Me(key_id=caller.id, name=caller.name)


@router.get("/api/audit", response_model=AuditLog, responses=ERRORS, summary="The calling key's audit log")
def audit(ctx: Ctx, caller: Caller):
    return AuditLog.from_rows(ctx.store.audit_log(caller.id))
