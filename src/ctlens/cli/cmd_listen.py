"""``ctlens listen``: receive studies over DICOM (C-STORE SCP), analyse each, write and send the results.

Defaults come from the ``listen_*`` settings (``CTLENS_LISTEN_AE_TITLE``, ``CTLENS_LISTEN_PORT``,
``CTLENS_LISTEN_ALLOWED_AE_TITLES``, ...). One line is printed per received study and per result or failure;
Ctrl-C or SIGTERM stops (the study being analysed, if any, is finished first; a second Ctrl-C abandons it).

Example:
    >>> import typer
    >>> app = typer.Typer(); register(app)
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--help"]).exit_code
    0
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors
from ctlens.cli.grouped_log import quiet_network_log


def register(app: typer.Typer) -> None:
    """Add the ``listen`` command to ``app``."""

    @app.command("listen")
    @one_line_errors
    def listen_command(
        spool: Annotated[Path, typer.Option(help="folder for received instances (one listener per folder)")],
        results: Annotated[Path, typer.Option(help="folder for the results: <study>/findings.json, seg.dcm, sr.dcm")],
        ae_title: Annotated[str | None, typer.Option(help="our AE title [setting listen_ae_title]")] = None,
        port: Annotated[int | None, typer.Option(help="TCP port [setting listen_port]")] = None,
        host: Annotated[
            str, typer.Option(help="address to listen on (default loopback; 0.0.0.0 for modalities on the network)")
        ] = "127.0.0.1",
        quiet_seconds: Annotated[
            float | None, typer.Option(help="analyse a study once nothing arrived for this long")
        ] = None,
        allow_ae: Annotated[
            list[str] | None,
            typer.Option(help="calling AE title allowed to send (repeatable) [setting listen_allowed_ae_titles]"),
        ] = None,
        accept_any: Annotated[
            bool, typer.Option("--accept-any", help="accept any calling AE title (trusted networks only)")
        ] = False,
        send_to: Annotated[
            str | None,
            typer.Option(help="send results to dicom://AET@host:port or http(s)://.../dicom-web"),
        ] = None,
        max_spool_gb: Annotated[
            float | None, typer.Option(help="most GB the spool may hold [setting listen_max_spool_bytes]")
        ] = None,
    ) -> None:
        """Receive studies over DICOM (C-STORE), analyse each once it is complete, write and send the results."""
        from ctlens.connect.listener import Listener
        from ctlens.core.settings import get_settings

        settings = get_settings()
        quiet_network_log()
        listener = Listener(
            ae_title or settings.listen_ae_title,
            port if port is not None else settings.listen_port,
            spool,
            results_dir=results,
            host=host,
            allowed_ae_titles=allow_ae or settings.listen_allowed_ae_titles,
            accept_any=accept_any or settings.listen_accept_any,
            quiet_seconds=quiet_seconds if quiet_seconds is not None else settings.listen_quiet_seconds,
            max_spool_bytes=int(max_spool_gb * 1024**3) if max_spool_gb is not None else None,
            destination=send_to or settings.listen_destination,
            on_event=lambda line: print(line, flush=True),
        )
        listener.start()
        signal.signal(signal.SIGTERM, lambda *_: listener.request_stop())  # service managers stop with SIGTERM
        who = "any calling AE title" if listener.accept_any else ", ".join(listener.allowed)
        print(
            f"listening as {listener.ae_title} on {host}:{listener.port} (accepting {who}); spool {spool}, "
            f"results {results}" + (" -> sent on" if listener.destination else "") + "; Ctrl-C stops",
            flush=True,
        )
        try:
            listener.serve_forever()
        except KeyboardInterrupt:
            print("stopped (the study in progress stays in the spool)", flush=True)
            raise SystemExit(130) from None
        print("stopped", flush=True)
