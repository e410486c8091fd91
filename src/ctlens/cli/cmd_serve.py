"""``ctlens serve``, ``ctlens create-key`` and ``ctlens keys list|revoke``: run the web service (uvicorn), make an
API key, list or revoke the keys.

The CLI may not import the API layer (they are siblings), so these commands replace the process with
``python -m ctlens.api ...``, which does the work.

``serve --no-auth`` (local use, as ScanSage's clients expect: no key) is refused unless the host is a loopback
address; it reaches the service as ``CTLENS_NO_AUTH=1``. ``serve`` also sets ``CTLENS_USER_MODELS_DIR`` to
``./models`` (absolute) when no folder of user models is configured.

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
from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors
from ctlens.core.errors import CTLensError
from ctlens.core.settings import get_settings, no_auth_refusal


def serve_environment(host: str, no_auth: bool, cwd: Path | None = None) -> dict[str, str]:
    """The environment variables ``serve`` adds for the service; refuses ``--no-auth`` on a non-loopback host.

    ``--no-auth`` also counts when the settings (environment or ``.env``) already ask for it.

    Example:
        >>> serve_environment("127.0.0.1", True, Path("/srv"))["CTLENS_NO_AUTH"]
        '1'
        >>> try:
        ...     serve_environment("0.0.0.0", True)
        ... except CTLensError as exc:
        ...     print(exc.reason.split(":")[0])
        --no-auth is for local use only
    """
    settings = get_settings()
    env: dict[str, str] = {}
    if no_auth or settings.no_auth:
        refusal = no_auth_refusal(host)
        if refusal:
            raise CTLensError(refusal)
        env["CTLENS_NO_AUTH"] = "1"
    if settings.user_models_dir is None:
        env["CTLENS_USER_MODELS_DIR"] = str((cwd or Path.cwd()) / "models")
    return env


def _exec_api(args: list[str], module: str = "ctlens.api") -> None:
    """Replace this process by ``python -m MODULE ARGS`` (signals go straight to uvicorn)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``create-key`` and the ``keys`` group."""

    @app.command()
    @one_line_errors
    def serve(
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port")] = 8000,
        create_key: Annotated[
            bool, typer.Option("--create-key", help="print a new API key first (also done when no key exists yet)")
        ] = False,
        workers: Annotated[int | None, typer.Option(help="worker processes (default CTLENS_WORKERS)")] = None,
        no_auth: Annotated[
            bool,
            typer.Option(
                "--no-auth", help="local use without API keys (requests from this machine only; loopback host only)"
            ),
        ] = False,
    ) -> None:
        """Run the ctlens web service and viewer (FastAPI + uvicorn); prints how to log in."""
        os.environ.update(serve_environment(host, no_auth))
        args = ["serve", "--host", host, "--port", str(port)]
        args += ["--create-key"] if create_key else []
        args += ["--workers", str(workers)] if workers else []
        _exec_api(args)

    @app.command("create-key")
    @one_line_errors
    def create_key_command(name: Annotated[str, typer.Option(help="a name to recognise the key by")] = "cli") -> None:
        """Create an API key for the service and print it (shown once, stored hashed)."""
        _exec_api(["create-key", "--name", name])

    keys = typer.Typer(help="List or revoke the service's API keys (in CTLENS_SERVICE_DIR).", no_args_is_help=True)

    @keys.command("list")
    @one_line_errors
    def list_keys() -> None:
        """List the keys: id, active/revoked, created (UTC), name (secrets are never stored)."""
        _exec_api(["list"], module="ctlens.api.keys")

    @keys.command("revoke")
    @one_line_errors
    def revoke_key(key_id: Annotated[str, typer.Argument(help="the key's id, from `ctlens keys list`")]) -> None:
        """Revoke a key: its requests are refused (401) from now on."""
        _exec_api(["revoke", key_id], module="ctlens.api.keys")

    app.add_typer(keys, name="keys")
