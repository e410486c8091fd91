"""RFC 7807 ``application/problem+json`` answers for every error, never a traceback, and their OpenAPI docs.

:data:`PROBLEM` and :data:`ERRORS` are what the routes declare as their error answers (``responses=``). An error's
file is shown by its name only and absolute paths in its text are cut to their last part (:func:`public_text`):
no answer shows where the service keeps its files. A body that FastAPI could not parse because it was too large
or held too many files is a 413, not a 400 (:func:`parse_error_status`).

Example:
    >>> from ctlens.core.errors import UnsupportedFormatError
    >>> status_for(UnsupportedFormatError("not an image", path="x"))
    415
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from pathlib import PurePath
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


_ABSOLUTE = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"(),:;]+)+/?")


def public_text(exc: CTLensError) -> str:
    """The error's one line with its file shown by name only and absolute paths cut to their last part.

    Example:
        >>> from ctlens.core.errors import CorruptFileError
        >>> public_text(CorruptFileError("cannot read /srv/ctlens/tmp/up_1/x.raw", path="/srv/ctlens/tmp/up_1/a.nrrd"))
        'a.nrrd: cannot read x.raw'
        >>> public_text(ServiceError("see http://host:8042/dicom-web/studies", status=502))
        'see http://host:8042/dicom-web/studies'
    """

    def cut(text: str | None) -> str | None:
        return None if text is None else _ABSOLUTE.sub(lambda m: PurePath(m.group(0)).name or "/", text)

    path = PurePath(exc.path).name if exc.path else None
    text = f"{path}: {cut(exc.reason)}" if path else cut(exc.reason)
    hint = cut(exc.hint)
    return f"{text} ({hint})" if hint else str(text)


def parse_error_status(exc: Exception) -> tuple[int, str] | None:
    """(status, detail) for a 400 FastAPI raised while parsing a body, from its cause: a body over the size limit
    or too many files or fields is 413; None when the cause says nothing more.

    Example:
        >>> from starlette.exceptions import HTTPException
        >>> err = HTTPException(400, "There was an error parsing the body")
        >>> err.__cause__ = ServiceError("request body larger than the limit of 10 bytes", status=413)
        >>> parse_error_status(err)
        (413, 'request body larger than the limit of 10 bytes')
    """
    cause = exc.__cause__
    if isinstance(cause, CTLensError):
        return status_for(cause), public_text(cause)
    for text in (str(cause or ""), str(getattr(exc, "detail", ""))):
        if "too many" in text.lower():
            return 413, f"too many files or fields in the form ({text[:120]})"
    return None


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
        return problem(status_for(exc), public_text(exc), instance=request.url.path, **extra)

    async def http_error(request, exc: HTTPException):
        parsed = parse_error_status(exc) if exc.status_code == 400 else None
        if parsed is not None:
            return problem(parsed[0], parsed[1], instance=request.url.path)
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
