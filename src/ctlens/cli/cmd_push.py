"""``ctlens push FILES_OR_DIR --to URL``: send DICOM instances to an archive (C-STORE or STOW-RS).

``--to`` is ``dicom://AET@host:port`` (optionally ``?calling=OURAET``) or a DICOMweb root
``http(s)://host/dicom-web`` (default: the ``dicomweb_url`` setting). Folders are searched recursively for
DICOM files.

Example:
    >>> import typer
    >>> app = typer.Typer(); register(app)
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--help"]).exit_code
    0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors
from ctlens.cli.grouped_log import quiet_network_log


def register(app: typer.Typer) -> None:
    """Add the ``push`` command to ``app``."""

    @app.command("push")
    @one_line_errors
    def push_command(
        paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (searched recursively)")],
        to: Annotated[
            str | None,
            typer.Option(help="dicom://AET@host:port or http(s)://host/dicom-web [setting dicomweb_url]"),
        ] = None,
        calling_ae: Annotated[
            str | None, typer.Option(help="our AE title for C-STORE [?calling= or setting listen_ae_title]")
        ] = None,
    ) -> None:
        """Send DICOM files to an archive: C-STORE to a DICOM node or STOW-RS to a DICOMweb server."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from ctlens.connect.destination import destination_kind, redact, send_to
        from ctlens.connect.dicom_node import dicom_files
        from ctlens.core.errors import PacsError
        from ctlens.core.settings import get_settings

        target = to or get_settings().dicomweb_url
        if not target:
            raise PacsError("no destination", hint="pass --to dicom://AET@host:port or set CTLENS_DICOMWEB_URL")
        destination_kind(target)
        files = dicom_files(paths)
        if not files:
            raise PacsError("no DICOM files found", path=", ".join(str(p) for p in paths))
        quiet_network_log()
        columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, transient=True, console=Console(stderr=True)) as progress:
            task = progress.add_task("send", total=len(files))
            summary = send_to(
                files,
                target,
                calling_ae=calling_ae,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        Console().print(summary if summary else f"sent {len(files)} file(s) to {redact(target)}", markup=False)
