"""API keys: random secrets shown once, stored only as a peppered HMAC-SHA256 hash.

A key has 256 bits of randomness, so a fast keyed hash is enough (no password stretching is needed); the pepper
lives outside the database (setting ``CTLENS_KEY_PEPPER`` or a 0600 file in the service folder), so a stolen
database alone does not let anyone check guesses. ``python -m ctlens.api.keys list|revoke KEY_ID`` (what
``ctlens keys`` runs) lists the keys (id, name, created, revoked; never a secret) and revokes one.

Example:
    >>> key = new_key()
    >>> key.startswith("ctl_") and hash_key(key, b"pepper") != hash_key(key, b"other")
    True
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

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


def key_rows(store: Any) -> list[dict[str, Any]]:
    """Every key of the service's store, oldest first: id, name, created (epoch seconds), revoked (0/1).

    Example:
        >>> import tempfile, pathlib
        >>> from ctlens.api.store import Store
        >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "db.sqlite3")
        >>> _ = store.add_key("alice", "h1")
        >>> [(r["name"], r["revoked"]) for r in key_rows(store)]
        [('alice', 0)]
    """
    return store._all("SELECT id, name, created, revoked FROM api_keys ORDER BY created, id")


def key_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A table of keys for people: id, state, created (UTC), name.

    Example:
        >>> key_lines([{"id": "key_1", "name": "cli", "created": 0, "revoked": 1}])
        ['key_1  revoked  1970-01-01 00:00  cli']
    """
    return [
        f"{r['id']}  {'revoked' if r['revoked'] else 'active '}  "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['created']))}  {r['name']}"
        for r in rows
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m ctlens.api.keys list`` / ``revoke KEY_ID``; errors print one line and return 2.

    Example:
        >>> import os, tempfile
        >>> os.environ["CTLENS_SERVICE_DIR"] = tempfile.mkdtemp()
        >>> main(["revoke", "key_nope"])
        2
        >>> del os.environ["CTLENS_SERVICE_DIR"]
    """
    from ctlens.api.context import ServiceContext
    from ctlens.core.errors import CTLensError
    from ctlens.core.settings import get_settings

    parser = argparse.ArgumentParser(prog="ctlens keys", description="List or revoke the service's API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the keys (ids and names; secrets are never stored)")
    revoke = sub.add_parser("revoke", help="revoke a key by its id (its requests get 401 at once)")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)
    try:
        ctx = ServiceContext(get_settings())
        if args.command == "list":
            for line in key_lines(key_rows(ctx.store)) or ["no keys yet (make one with `ctlens create-key`)"]:
                print(line)
            return 0
        if not ctx.store.revoke_key(args.key_id):
            print(f"ctlens: error: no key with id {args.key_id!r} (see `ctlens keys list`)", file=sys.stderr)
            return 2
        print(f"revoked {args.key_id}")
        return 0
    except (CTLensError, OSError) as exc:
        print(f"ctlens: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
