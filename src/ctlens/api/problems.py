"""RFC 7807 ``application/problem+json`` answers for every error, never a traceback, and their OpenAPI docs.

:data:`PROBLEM` and :data:`ERRORS` are what the routes declare as their error answers (``responses=``).

Example:
    >>> from ctlens.core.errors import UnsupportedFormatError
    >>> status_for(UnsupportedFormatError("not an image", path="x"))
    415
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from ctlens.core.errors import (
    CorruptFileError,
    CTLensError,
    GeometryError,
    InputNotFoundError,
    LLMProviderError,
    MissingDependencyError,
    SeriesSelectionError,
    ServiceError,
    UnsafeArchiveError,
    UnsupportedFormatError,
)

logger = logging.getLogger("ctlens.api")
PROBLEM_TYPE = "application/problem+json"

PROBLEM = {"content": {PROBLEM_TYPE: {"schema": {"type": "object"}}}}
"""An error answer in a route's OpenAPI ``responses``: ``{409: PROBLEM}``."""
ERRORS = {
    401: {"description": "no or unknown API key", **PROBLEM},
    404: {"description": "not found (or another key's)", **PROBLEM},
    422: {"description": "invalid input", **PROBLEM},
    429: {"description": "rate limit", **PROBLEM},
}
"""The error answers every route with a key may give."""

_STATUS: list[tuple[type[CTLensError], int]] = [
    (ServiceError, 400),
    (UnsupportedFormatError, 415),
    (UnsafeArchiveError, 422),
    (CorruptFileError, 422),
    (InputNotFoundError, 422),
    (SeriesSelectionError, 422),
    (GeometryError, 422),
    (MissingDependencyError, 501),
    (LLMProviderError, 502),
]


def status_for(exc: CTLensError) -> int:
    """The HTTP status for a ctlens error (4xx for input problems)."""
    if isinstance(exc, ServiceError):
        return exc.status
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def problem(status: int, detail: str, *, title: str | None = None, instance: str | None = None, **extra: Any):
    """A problem+json response."""
    from fastapi.responses import JSONResponse

    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429 and "retry_after" in extra:
        headers = {"Retry-After": str(int(extra["retry_after"]) + 1)}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def install(app) -> None:
    """Register the handlers: CTLensError, HTTP errors, validation errors and anything unexpected."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def ctlens_error(request, exc: CTLensError):
        extra = {"retry_after": exc.retry_after} if hasattr(exc, "retry_after") else {}
        return problem(status_for(exc), exc.one_line(), instance=request.url.path, **extra)

    async def http_error(request, exc: HTTPException):
        return problem(exc.status_code, str(exc.detail), instance=request.url.path)

    async def validation_error(request, exc: RequestValidationError):
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()[:20]]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'])}: {first['msg']}"
        return problem(422, detail, instance=request.url.path, errors=errors)

    async def unexpected(request, exc: Exception):
        logger.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return problem(500, f"internal error ({type(exc).__name__}); the server log has details")

    app.add_exception_handler(CTLensError, ctlens_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
