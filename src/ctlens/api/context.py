"""Everything one service process shares: settings, the SQLite store, folders, caches, job runner, metrics.

Example:
    >>> import tempfile
    >>> from ctlens.core.settings import Settings
    >>> ctx = ServiceContext(Settings(service_dir=tempfile.mkdtemp()))
    >>> ctx.store.journal_mode()
    'wal'
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from ctlens.api.keys import hash_key, load_pepper, new_key
from ctlens.api.ratelimit import RedisWindow, TokenBuckets
from ctlens.api.render import PngCache
from ctlens.api.store import Store
from ctlens.core.settings import Settings

logger = logging.getLogger("ctlens.api")


class ServiceContext:
    """State of one service process (several processes share the folder and the database)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.service_dir).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.root.chmod(0o700)  # uploads and keys' pepper are private to the service's user
        except OSError:
            logger.warning("could not make the service folder private (chmod 700)")
        self.tmp_dir = self.root / "uploads"
        self.content_root = self.root / "content"
        self.tmp_dir.mkdir(exist_ok=True)
        self.content_root.mkdir(exist_ok=True)
        self.store = Store(self.root / "ctlens.sqlite3")
        pepper = settings.key_pepper.get_secret_value() if settings.key_pepper is not None else None
        self.pepper = load_pepper(self.root, pepper)
        self.pngs = PngCache()
        self.redis = self._redis(settings.redis_url)
        if self.redis is not None:
            self.limiter: Any = RedisWindow(self.redis, settings.rate_limit_per_minute, settings.rate_limit_burst)
        else:
            self.limiter = TokenBuckets(settings.rate_limit_per_minute, settings.rate_limit_burst)
        # Requests with a missing or wrong key, per client address: guessing keys is throttled.
        self.auth_failures = TokenBuckets(settings.auth_failures_per_minute, settings.auth_failures_burst)
        self.runner = None  # set by the app's lifespan
        self._results: dict[str, dict[str, Any]] = {}
        self._results_lock = threading.Lock()
        self._viewed: dict[tuple[str, str], float] = {}

    @staticmethod
    def _redis(url: str | None):
        if not url:
            return None
        from ctlens.core.optional import require

        redis = require("redis", extra="server")
        client = redis.Redis.from_url(url, socket_timeout=2.0)
        client.ping()
        logger.info("using Redis for the result cache and rate limits")
        return client

    def audit_view(self, key_id: str, study_id: str, every: float = 600.0) -> None:
        """Audit slice viewing once per key, study and ``every`` seconds (not once per slice)."""
        now = time.monotonic()
        seen = self._viewed.get((key_id, study_id))
        if seen is None or now - seen > every:
            self._viewed[(key_id, study_id)] = now
            self.store.audit(key_id, "view", study_id, "slices")

    def content_dir(self, sha256: str) -> Path:
        """Folder of one analysed content."""
        return self.content_root / sha256

    def create_key(self, name: str = "default") -> str:
        """A new API key (returned once, stored hashed)."""
        key = new_key()
        self.store.add_key(name, hash_key(key, self.pepper))
        return key

    def key_for(self, key: str) -> dict[str, Any] | None:
        """The active key record for a presented key, or None."""
        return self.store.key_by_hash(hash_key(key, self.pepper))

    # Finished results are immutable: decoded ones are kept in memory (checked against the folder on disk),
    # and mirrored in Redis when configured, so other hosts answer cache hits without the SQLite file.
    def cached_result(self, sha256: str) -> dict[str, Any] | None:
        """The stored result of a content that is ready on disk, or None."""
        memo = self._results.get(sha256)
        if memo is not None and (self.content_dir(sha256) / "volume.npy").exists():
            return memo
        result = self._lookup_result(sha256)
        if result is not None:
            self._memo(sha256, result)
        return result

    def _memo(self, sha256: str, result: dict[str, Any]) -> None:
        with self._results_lock:
            self._results[sha256] = result
            while len(self._results) > 512:
                self._results.pop(next(iter(self._results)))

    def _lookup_result(self, sha256: str) -> dict[str, Any] | None:
        if self.redis is not None:
            raw = self.redis.get(f"ctlens:content:{sha256}")
            if raw:
                return json.loads(raw)
        entry = self.store.content(sha256)
        if entry and entry["status"] == "ready" and (self.content_dir(sha256) / "volume.npy").exists():
            return entry["result"]
        return None

    def remember_result(self, sha256: str, result: dict[str, Any]) -> None:
        """Record a finished result (database, memory, Redis)."""
        self.store.finish_content(sha256, result)
        self._memo(sha256, result)
        if self.redis is not None:
            self.redis.set(f"ctlens:content:{sha256}", json.dumps(result))

    def forget_result(self, sha256: str) -> None:
        """Forget a result everywhere."""
        with self._results_lock:
            self._results.pop(sha256, None)
        self.store.drop_content(sha256)
        if self.redis is not None:
            self.redis.delete(f"ctlens:content:{sha256}")
