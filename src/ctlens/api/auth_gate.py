"""The auth gate: a pure ASGI middleware that refuses a request without a valid key before its body is read.

FastAPI resolves a route's dependencies (the key check among them) only after it has parsed the body's form
fields, so a form upload without a key would be spooled to disk before the 401. The gate runs first: it finds
the route the request is for, and when that route needs a key (:func:`ctlens.api.security.require_key` anywhere
in its dependencies) it checks the headers and answers 401 / 429 at once, without reading a byte of the body.
The checked key is left in the request's state, so the route's own dependency does not count it twice.

Routes without a key (health, the page, the docs, static files) and unknown paths (404) pass straight through.
Under ``--no-auth`` (setting ``no_auth``) the same check lets a keyless request from a loopback address through as
the local owner (:data:`ctlens.api.security.LOCAL_OWNER`); from any other address it is still 401 before the body.

Example:
    >>> import tempfile
    >>> from fastapi.testclient import TestClient
    >>> from ctlens.api.app import create_app
    >>> from ctlens.core.settings import Settings
    >>> app = create_app(Settings(service_dir=tempfile.mkdtemp()), start_jobs=False)
    >>> install_auth_gate(app)
    >>> TestClient(app).post("/api/analyze", content=b"x" * 1000, headers={"content-type": "text/plain"}).status_code
    401
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import Match

from ctlens.api.problems import problem, public_text, status_for
from ctlens.api.security import authenticate, require_key
from ctlens.core.errors import CTLensError

__all__ = ["AuthGate", "install_auth_gate", "route_needs_key"]


def _calls(dependant: Any) -> bool:
    return any(dep.call is require_key or _calls(dep) for dep in dependant.dependencies)


def route_needs_key(route: Any) -> bool:
    """Whether a route asks for the calling key anywhere in its dependencies.

    Example:
        >>> from ctlens.api.routes import health
        >>> [route_needs_key(r) for r in health.router.routes]
        [False, False, True]
    """
    return isinstance(route, APIRoute) and _calls(route.dependant)


def _answering_route(routes: Any, scope: dict[str, Any]) -> Any:
    """The first route that fully matches ``scope``, looking into included routers (FastAPI includes them lazily)."""
    for route in routes:
        match, _ = route.matches(scope)
        if match != Match.FULL:
            continue
        inner = getattr(route, "original_router", None)
        if inner is None:
            return route
        prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
        found = _answering_route(inner.routes, {**scope, "path": scope["path"].removeprefix(prefix)})
        if found is not None:
            return found
    return None


class AuthGate:
    """Pure ASGI middleware: 401 / 429 for a keyed route without a valid key, before the body is read."""

    def __init__(self, app: Any, routes_of: FastAPI) -> None:
        self.app = app
        self.routes_of = routes_of
        self._needs: dict[int, bool] = {}

    def needs_key(self, scope: dict[str, Any]) -> bool:
        """Whether the route that will answer ``scope`` needs a key (none matches: no, the answer is a 404)."""
        route = _answering_route(self.routes_of.router.routes, scope)
        if route is None:
            return False
        if id(route) not in self._needs:
            self._needs[id(route)] = route_needs_key(route)
        return self._needs[id(route)]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.needs_key(scope):
            return await self.app(scope, receive, send)
        request = Request(scope)  # headers only: no receive, so the body cannot be read here
        try:
            await authenticate(request)
        except CTLensError as exc:
            extra = {"retry_after": exc.retry_after} if hasattr(exc, "retry_after") else {}
            response = problem(status_for(exc), public_text(exc), instance=scope["path"], **extra)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


def install_auth_gate(app: FastAPI) -> None:
    """Add the gate to ``app`` once (call it last, so it is the outermost middleware: a request without a key
    is refused before the body-size limit or anything else looks at it)."""
    if getattr(app.state, "auth_gate", False):
        return
    app.add_middleware(AuthGate, routes_of=app)
    app.state.auth_gate = True
