"""The routes' typed FastAPI dependencies: the service context, the calling key, the caller's study.

A handler names what it needs in its signature and FastAPI provides it, or answers with a problem first:

- :data:`Ctx`: the process's :class:`~ctlens.api.context.ServiceContext`;
- :data:`Caller`: the authenticated key (401 without one, 429 over its rate; :func:`ctlens.api.security.require_key`);
- :data:`OwnedStudy`: the caller's study row for the ``study_id`` path parameter (404 when it is another key's);
- :data:`ReadyStudy`: that study's stored artifacts once analysed (409 before).

Example:
    >>> from typing import get_args
    >>> get_args(Ctx)[0].__name__, get_args(Caller)[0].__name__
    ('ServiceContext', 'CallingKey')
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from ctlens.api.artifacts import Artifacts
from ctlens.api.context import ServiceContext
from ctlens.api.security import CallingKey, require_key
from ctlens.api.studies import owned_study, ready_study


async def service_context(request: Request) -> ServiceContext:
    """The app's service context (async: no worker thread for an attribute read)."""
    return request.app.state.ctx


Ctx = Annotated[ServiceContext, Depends(service_context)]
Caller = Annotated[CallingKey, Depends(require_key)]


async def caller_study(study_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """The caller's study row (one indexed SQLite read, in the event loop like the key check)."""
    return owned_study(ctx, caller.id, study_id)


def caller_ready_study(study_id: str, ctx: Ctx, caller: Caller) -> Artifacts:
    """The caller's analysed study's artifacts (loaded in a worker thread)."""
    return ready_study(ctx, caller.id, study_id)


OwnedStudy = Annotated[dict[str, Any], Depends(caller_study)]
ReadyStudy = Annotated[Artifacts, Depends(caller_ready_study)]
