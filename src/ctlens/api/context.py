"""Everything one service process shares (:class:`ServiceContext`): settings, the SQLite store, folders, the result
and slice caches, rate limiters, the job runner and the metrics; and its readiness check.

Routes receive it typed as :data:`ctlens.api.deps.Ctx`; services take it as their first argument.
Each context stages uploads in its own folder under ``uploads/`` (:class:`ctlens.api.recovery.ProcessMark`), so a
recovery sweep can tell what a dead process left, and sets the installation salt of UID hashing from the service
secret (:func:`uid_salt`), so hashed UIDs cannot be linked across installations, and cleans series descriptions
out of the ctlens log records (:mod:`ctlens.api.phi_log`).

Example:
    >>> import tempfile
    >>> from ctlens.core.settings import Settings
    >>> ctx = ServiceContext(Settings(service_dir=tempfile.mkdtemp()))
    >>> ctx.store.journal_mode()
    'wal'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctlens.api.artifacts import forget_artifacts
from ctlens.api.keys import hash_key, load_pepper, new_key
from ctlens.api.metrics import ServiceMetrics
from ctlens.api.phi_log import install as install_phi_log_filter
from ctlens.api.ratelimit import RedisWindow, TokenBuckets
from ctlens.api.recovery import ProcessMark
from ctlens.api.schemas import Ready
from ctlens.api.slice_png import PngCache
from ctlens.api.store import Store
from ctlens.core.settings import Settings
from ctlens.io.uid_hash import set_installation_salt

if TYPE_CHECKING:
    from ctlens.api.jobs import JobRunner

logger = logging.getLogger("ctlens.api")


def uid_salt(pepper: bytes) -> str:
    """The UID-hashing salt of an installation, derived from its secret (the secret itself is never used as is).

    Example:
        >>> uid_salt(b"a") == uid_salt(b"a") != uid_salt(b"b")
        True
    """
    return hmac.new(pepper, b"ctlens uid salt", hashlib.sha256).hexdigest()


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
        self.uploads_root = self.root / "uploads"
        self.content_root = self.root / "content"
        self.uploads_root.mkdir(exist_ok=True)
        self.content_root.mkdir(exist_ok=True)
        self.mark = ProcessMark.for_folder(self.uploads_root)
        self.tmp_dir = self.mark.folder
        """Where this process stages uploads (``uploads/<token>/``; swept once the process is gone)."""
        self.store = Store(self.root / "ctlens.sqlite3")
        self.store.worker = self.mark.token
        pepper = settings.key_pepper.get_secret_value() if settings.key_pepper is not None else None
        self.pepper = load_pepper(self.root, pepper)
        set_installation_salt(uid_salt(self.pepper))
        install_phi_log_filter()  # series descriptions in log messages are cleaned
        self.pngs = PngCache()
        self.metrics = ServiceMetrics()
        self.redis: Any = self._redis(settings.redis_url)
        self.limiter: RedisWindow | TokenBuckets
        if self.redis is not None:
            self.limiter = RedisWindow(self.redis, settings.rate_limit_per_minute, settings.rate_limit_burst)
        else:
            self.limiter = TokenBuckets(settings.rate_limit_per_minute, settings.rate_limit_burst)
        # Requests with a missing or wrong key, per client address: guessing keys is throttled.
        self.auth_failures = TokenBuckets(settings.auth_failures_per_minute, settings.auth_failures_burst)
        self.runner: JobRunner | None = None  # set by the app's lifespan
        self._results: dict[str, dict[str, Any]] = {}
        self._results_lock = threading.Lock()
        self._viewed: dict[tuple[str, str], float] = {}

    @staticmethod
    def _redis(url: str | None) -> Any:
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

    def forget_content(self, sha256: str) -> None:
        """Forget a content entirely: its result, its stored folder and its rendered slices."""
        self.forget_result(sha256)
        self.forget_folder(sha256)

    def forget_folder(self, sha256: str) -> None:
        """Delete a content's stored folder and rendered slices (its row, if any, stays)."""
        with self._results_lock:
            self._results.pop(sha256, None)
        forget_artifacts(self.content_dir(sha256))
        self.pngs.drop(sha256)

    def readiness(self) -> Ready:
        """``/readyz``: whether the database answers, which LLM provider is set, which layers import."""
        from ctlens.api.services import layer_status
        from ctlens.llm.providers import get_provider

        try:
            self.store.ping()
            database = "ok"
        except Exception as exc:  # report, do not crash
            database = f"error: {type(exc).__name__}"
        try:
            llm = get_provider(self.settings).name
        except Exception as exc:
            llm = f"error: {type(exc).__name__}"
        status = "ok" if database == "ok" else "unavailable"
        return Ready(status=status, database=database, llm_provider=llm, layers=layer_status())
