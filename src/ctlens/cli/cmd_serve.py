"""``ctlens serve`` and ``ctlens create-key``: run the web service (uvicorn) / make an API key.

The CLI may not import the API layer (they are siblings), so these commands replace the process with
``python -m ctlens.api ...``, which does the work.

Example:
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    >>> [c.callback.__name__ for c in app.registered_commands]
    ['serve', 'create_key_command']
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors


def _exec_api(args: list[str]) -> None:
    """Replace this process by ``python -m ctlens.api ARGS`` (signals go straight to uvicorn)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "ctlens.api", *args])


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``create-key``."""

    @app.command()
    @one_line_errors
    def serve(
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port")] = 8000,
        create_key: Annotated[
            bool, typer.Option("--create-key", help="print a new API key first (also done when no key exists yet)")
        ] = False,
        workers: Annotated[int | None, typer.Option(help="worker processes (default CTLENS_WORKERS)")] = None,
    ) -> None:
        """Run the ctlens web service and viewer (FastAPI + uvicorn); prints how to log in."""
        args = ["serve", "--host", host, "--port", str(port)]
        args += ["--create-key"] if create_key else []
        args += ["--workers", str(workers)] if workers else []
        _exec_api(args)

    @app.command("create-key")
    @one_line_errors
    def create_key_command(name: Annotated[str, typer.Option(help="a name to recognise the key by")] = "cli") -> None:
        """Create an API key for the service and print it (shown once, stored hashed)."""
        _exec_api(["create-key", "--name", name])
