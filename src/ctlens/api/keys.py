"""API keys: random secrets shown once, stored only as a peppered HMAC-SHA256 hash.

A key has 256 bits of randomness, so a fast keyed hash is enough (no password stretching is needed); the pepper
lives outside the database (setting ``CTLENS_KEY_PEPPER`` or a 0600 file in the service folder), so a stolen
database alone does not let anyone check guesses.

Example:
    >>> key = new_key()
    >>> key.startswith("ctl_") and hash_key(key, b"pepper") != hash_key(key, b"other")
    True
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_PREFIX = "ctl_"


def new_key() -> str:
    """A new random API key (``ctl_`` + 43 URL-safe characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str, pepper: bytes) -> str:
    """The stored form of ``key``: hex HMAC-SHA256 keyed with the server's pepper."""
    return hmac.new(pepper, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def load_pepper(service_dir: Path, configured: str | None = None) -> bytes:
    """The configured pepper, or the one in ``service_dir/pepper`` (created, mode 0600, on first use)."""
    if configured:
        return configured.encode()
    path = service_dir / "pepper"
    if not path.exists():
        service_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".pepper.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # first writer wins when several workers start at once
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()
