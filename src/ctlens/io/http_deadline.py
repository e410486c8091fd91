"""A hard deadline for blocking httpx requests: at the deadline, the request's sockets are shut down.

httpx's timeouts bound each single read, so a server that sends one byte a second never trips them.
:class:`Deadline` holds the sockets a request opens (through httpx's documented ``trace`` request extension,
whose ``connect_tcp.complete`` event carries the new network stream) and a timer; when the timer fires it
shuts the sockets down, which makes any blocked read return at once. The caller checks :attr:`Deadline.expired`
to tell that apart from a server that closed the connection itself. Connections must not be pooled across
deadlines (each request opens its own), so every socket a request reads from is known here.

Example:
    >>> with Deadline(5.0) as deadline:
    ...     deadline.expired, 4.0 < deadline.remaining() <= 5.0
    (False, True)
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

CONNECT_EVENTS = (".connect_tcp.complete", ".connect_unix_socket.complete", ".start_tls.complete")
"""Trace events whose ``return_value`` is the network stream of a new connection."""


class Deadline:
    """A point in time after which the sockets registered through :meth:`trace` are shut down.

    Use as a context manager around the whole request (all its retries and the reading of the body); pass
    ``{"trace": deadline.trace}`` as the request's extensions.

    Example:
        >>> import time
        >>> with Deadline(0.05) as deadline:
        ...     time.sleep(0.1)
        ...     deadline.expired
        True
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._end = time.monotonic() + self.seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = threading.Event()
        self._timer = threading.Timer(max(self.seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()

    @property
    def expired(self) -> bool:
        """True once the deadline has passed (and the sockets were shut down)."""
        return self._expired.is_set() or time.monotonic() >= self._end

    def remaining(self) -> float:
        """Seconds left (0 when expired)."""
        return max(0.0, self._end - time.monotonic())

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` or until the deadline, whichever comes first."""
        self._expired.wait(min(seconds, self.remaining()))

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx ``trace`` extension callback: remember the socket of each new connection."""
        if not event.endswith(CONNECT_EVENTS):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
        if self._expired.is_set():
            _shutdown(sock)

    def _expire(self) -> None:
        self._expired.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed
