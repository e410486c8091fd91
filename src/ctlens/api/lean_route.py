"""A documented FastAPI route served by a plain ``Request -> Response`` function: :class:`LeanRoute`.

FastAPI answers each request of an ordinary route by solving its dependency tree again: for the slice route
(the service context, the calling key and its two documented header schemes, the caller's study, the path and
query parameters) that is ten dependency solves, about half of the CPU time of a slice answered from the cache.
A :class:`LeanRoute` keeps everything FastAPI knows about the route (the endpoint's signature for the OpenAPI
document, its dependencies for :func:`ctlens.api.auth_gate.route_needs_key`) but serves requests with the
``handler`` given, which reads what it needs from the request itself. Errors it raises (a
:class:`~ctlens.core.errors.ServiceError`) are answered by the app's exception handlers like any route's.

Use it for hot read-only routes whose handler does the same checks as the dependencies (the auth gate has already
authenticated the caller and left it in ``request.state.caller``; :func:`calling_key` falls back to the same check
for an app without the gate).

Example:
    >>> from fastapi import APIRouter
    >>> from starlette.responses import PlainTextResponse
    >>> async def handler(request): return PlainTextResponse("lean")
    >>> router = APIRouter()
    >>> router.add_api_route("/x", lambda: "slow", methods=["GET"], route_class_override=lean_route(handler))
    >>> type(router.routes[0]).__name__, router.routes[0].handler is handler
    ('LeanRoute', True)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ctlens.api.security import CallingKey, authenticate

__all__ = ["LeanRoute", "calling_key", "lean_route"]

Handler = Callable[[Request], Awaitable[Response]]


class LeanRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` whose requests go to :attr:`handler` (no per-request dependency
    solving); documentation and route inspection see the endpoint as usual."""

    handler: Handler

    def get_route_handler(self) -> Handler:
        """The function FastAPI wraps into this route's ASGI app (exception handling included)."""
        return self.handler


def lean_route(handler: Handler) -> type[LeanRoute]:
    """A :class:`LeanRoute` class serving with ``handler`` (for ``route_class_override``)."""
    return type("LeanRoute", (LeanRoute,), {"handler": staticmethod(handler)})


async def calling_key(request: Request) -> CallingKey:
    """The caller of ``request``: the auth gate's answer when it checked the request, else the same check now
    (401 / 429 as :func:`ctlens.api.security.require_key`)."""
    checked = getattr(request.state, "caller", None)
    if isinstance(checked, CallingKey):
        return checked
    return await authenticate(request)
