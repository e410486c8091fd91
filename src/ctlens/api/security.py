"""Authentication (API keys on every route but health and the page), rate limits and the audit trail.

Keys come as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. A missing or unknown key is 401;
a key over its rate is 429 with ``Retry-After``.

``--no-auth`` (setting ``no_auth``, for local use): a request *without* a key from a loopback client address
acts as one local owner (:data:`LOCAL_OWNER`, rate-limited like a key); a request that presents a key is checked
as always (a wrong key is still 401), and a request from any other address still needs a key.

Example:
    >>> presented_key({"authorization": "Bearer ctl_abc"}), presented_key({"x-api-key": "ctl_x"})
    ('ctl_abc', 'ctl_x')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from ctlens.core.errors import ServiceError
from ctlens.core.settings import is_loopback_host

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="Authorization: Bearer <API key>")
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="X-API-Key: <API key>"
)
"""The two ways to present a key, declared as OpenAPI security schemes (the docs' Authorize button).

They only document; :func:`require_key` reads the headers itself (auto_error off), so answers stay RFC 7807."""


@dataclass(frozen=True)
class CallingKey:
    """The authenticated key: its id (owner of studies) and name (routes take it as :data:`ctlens.api.deps.Caller`)."""

    id: str
    name: str


LOCAL_OWNER = CallingKey("local", "local (no auth)")
"""Who a keyless local request is under ``--no-auth``: the owner of its studies, conversations and audit rows."""


def presented_key(headers: Any) -> str | None:
    """The key from the request headers, if any."""
    auth = headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return (headers.get("x-api-key") or "").strip() or None


class RateLimited(ServiceError):
    """Too many requests for one key."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limit exceeded; retry in {retry_after:.1f} s", status=429)


def _refuse(ctx: ServiceContext, request: Request, reason: str) -> ServiceError:
    """A 401, or a 429 once one client address keeps presenting bad keys (guessing is throttled)."""
    client = request.client.host if request.client else "unknown"
    allowed, wait = ctx.auth_failures.take(client)
    if not allowed:
        return RateLimited(wait)
    return ServiceError(reason, status=401)


async def authenticate(request: Request) -> CallingKey:
    """The calling key of ``request`` from its headers alone (the body is never touched), or 401 / 429.

    Takes one token from the key's rate bucket; :func:`ctlens.api.auth_gate.AuthGate` calls it before the body is
    read and leaves the result in ``request.state.caller``.
    """
    ctx: ServiceContext = request.app.state.ctx
    key = presented_key(request.headers)
    if not key and ctx.settings.no_auth:
        return _local_owner(ctx, request)
    if not key or len(key) > 200:
        raise _refuse(ctx, request, "an API key is required (Authorization: Bearer <key>)")
    record = ctx.key_for(key)
    if record is None:
        raise _refuse(ctx, request, "unknown or revoked API key")
    allowed, wait = ctx.limiter.take(record["id"])
    if not allowed:
        raise RateLimited(wait)
    request.state.caller = CallingKey(record["id"], record["name"])
    return request.state.caller


def local_client(request: Request) -> bool:
    """Whether the request comes from this machine (its client address is a loopback address).

    Example:
        >>> local_client(Request({"type": "http", "client": ("127.0.0.1", 5000)}))
        True
        >>> local_client(Request({"type": "http", "client": ("10.0.0.7", 5000)}))
        False
    """
    return request.client is not None and is_loopback_host(request.client.host)


def _local_owner(ctx: ServiceContext, request: Request) -> CallingKey:
    """``--no-auth``: the local owner for a keyless request from this machine; 401 from anywhere else."""
    if not local_client(request):
        raise _refuse(ctx, request, "an API key is required: this service runs without keys for this machine only")
    allowed, wait = ctx.limiter.take(LOCAL_OWNER.id)
    if not allowed:
        raise RateLimited(wait)
    request.state.caller = LOCAL_OWNER
    return LOCAL_OWNER


async def require_key(
    request: Request,
    _bearer: object = Security(BEARER),
    _header: object = Security(API_KEY_HEADER),
) -> CallingKey:
    """FastAPI dependency: the calling key, or 401 / 429 (async: a hash and one indexed SQLite read).

    When the auth gate already checked this request (before its body was read), its answer is used as is.
    """
    checked = getattr(request.state, "caller", None)
    if isinstance(checked, CallingKey):
        return checked
    return await authenticate(request)
