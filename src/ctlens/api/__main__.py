"""``python -m ctlens.api [serve|create-key]``: what ``ctlens serve`` runs (the CLI may not import the API layer).

Example:
    >>> parser().parse_args(["serve", "--port", "9000"]).port
    9000
"""

from __future__ import annotations

import argparse
import os
import sys


def parser() -> argparse.ArgumentParser:
    """Command-line options (mirrors ``ctlens serve``)."""
    p = argparse.ArgumentParser(prog="python -m ctlens.api", description="Run the ctlens service.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--create-key", action="store_true", help="print a new API key first")
    serve.add_argument("--workers", type=int, default=None)
    key = sub.add_parser("create-key", help="create and print an API key")
    key.add_argument("--name", default="cli")
    return p


def login_lines(key: str | None, host: str, port: int, folder: str) -> list[str]:
    """What to print at start: the page's address, the data folder and how to log in."""
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    lines = [
        f"ctlens service: http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs)",
        f"data folder: {folder}",
    ]
    if key:
        lines += [
            f"new API key (shown once, stored hashed): {key}",
            "log in: open the page and paste this key, or send it as 'Authorization: Bearer <key>'",
        ]
    else:
        lines.append("log in with an existing API key; make a new one with `ctlens serve --create-key`")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors print one line and return 2."""
    from ctlens.api.context import ServiceContext
    from ctlens.core.errors import CTLensError
    from ctlens.core.settings import get_settings, no_auth_refusal

    args = parser().parse_args(argv)
    try:
        ctx = ServiceContext(get_settings())
        if args.command == "create-key":
            print(ctx.create_key(args.name))
            return 0
        no_auth = bool(ctx.settings.no_auth)
        if no_auth and (refusal := no_auth_refusal(args.host)):
            print(f"ctlens: error: {refusal}", file=sys.stderr)
            return 2
        first = ctx.store.count_keys() == 0 and not no_auth
        key = (
            ctx.create_key("serve --create-key" if args.create_key else "first key")
            if args.create_key or first
            else None
        )
    except (CTLensError, OSError) as exc:
        print(f"ctlens: error: {exc}", file=sys.stderr)
        return 2
    if no_auth:
        print("no-auth: requests from this machine need no key (local use only)", flush=True)
    for line in login_lines(key, args.host, args.port, str(ctx.root)):
        print(line, flush=True)
    import uvicorn

    os.environ["CTLENS_SERVICE_DIR"] = str(ctx.root)
    uvicorn.run(
        "ctlens.api.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers or ctx.settings.workers,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
