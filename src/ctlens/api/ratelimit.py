"""Per-key rate limits: a token bucket in this process, or a shared per-minute counter in Redis.

Example:
    >>> bucket = TokenBuckets(per_minute=60, burst=2)
    >>> [bucket.take("k", now=0.0)[0] for _ in range(3)]
    [True, True, False]
    >>> bucket.take("k", now=1.0)[0]
    True
"""

from __future__ import annotations

import threading
import time


class TokenBuckets:
    """``burst`` requests at once, refilled at ``per_minute`` per minute, per key."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds to wait before the next request would be allowed)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            return False, (1.0 - tokens) / self.rate if self.rate > 0 else 60.0


class RedisWindow:
    """At most ``per_minute + burst`` requests per key per clock minute, counted in Redis (shared by hosts)."""

    def __init__(self, client, per_minute: float, burst: int) -> None:
        self.client = client
        self.limit = int(per_minute + burst)

    def take(self, key: str, now: float | None = None) -> tuple[bool, float]:
        now = time.time() if now is None else now
        window = int(now // 60)
        name = f"ctlens:rate:{key}:{window}"
        pipe = self.client.pipeline()
        pipe.incr(name)
        pipe.expire(name, 120)
        count = pipe.execute()[0]
        if count <= self.limit:
            return True, 0.0
        return False, 60.0 - (now % 60)
