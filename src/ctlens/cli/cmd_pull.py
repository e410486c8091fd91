"""``ctlens pull [URL] --study UID [--series UID] --out DIR`` and ``ctlens search [URL] ...``: a DICOMweb archive.

``URL`` is the DICOMweb root (``http://host:8042/dicom-web``, a ``dicomweb+`` prefix is fine); left out, the
``dicomweb_url`` setting (``CTLENS_DICOMWEB_URL``) is used. Auth, timeouts and limits come from the
``dicomweb_*`` settings. ``search`` lists studies without any patient name, ID or birth date.

Example:
    >>> import typer
    >>> app = typer.Typer(); register(app)
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["pull", "--help"]).exit_code, CliRunner().invoke(app, ["search", "--help"]).exit_code
    (0, 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ctlens.cli.errors import one_line_errors

UrlArgument = Annotated[
    str | None,
    typer.Argument(help="DICOMweb root, e.g. http://host:8042/dicom-web (default: $CTLENS_DICOMWEB_URL)"),
]


def register(app: typer.Typer) -> None:
    """Add the ``pull`` and ``search`` commands to ``app``."""

    @app.command("pull")
    @one_line_errors
    def pull_command(
        study: Annotated[str, typer.Option("--study", help="StudyInstanceUID")],
        out: Annotated[Path, typer.Option("--out", "-o", help="folder to write the instances to")],
        url: UrlArgument = None,
        series: Annotated[
            str | None, typer.Option("--series", help="SeriesInstanceUID (default: the whole study)")
        ] = None,
    ) -> None:
        """Retrieve a series (or a whole study) from a DICOMweb server into OUT, one file per instance."""
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn

        from ctlens.io.dicomweb import DicomWebClient

        client = DicomWebClient.from_settings(url)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, transient=True, console=Console(stderr=True)) as progress:
            task = progress.add_task(f"retrieving from {escape(client.url)}", total=None)

            def received(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            files = client.retrieve_series(study, series, out, progress=received)
        size = sum(f.stat().st_size for f in files)
        Console().print(f"wrote {len(files)} instance(s), {size / 1e6:.1f} MB, to {out}", markup=False)

    @app.command("search")
    @one_line_errors
    def search_command(
        url: UrlArgument = None,
        study: Annotated[str | None, typer.Option("--study", help="StudyInstanceUID")] = None,
        accession: Annotated[str | None, typer.Option("--accession", help="accession number")] = None,
        date: Annotated[
            str | None, typer.Option("--date", help="study date YYYYMMDD or range YYYYMMDD-YYYYMMDD")
        ] = None,
        modality: Annotated[str | None, typer.Option("--modality", help="modality in study, e.g. CT")] = None,
        limit: Annotated[int, typer.Option("--limit", help="most studies to list")] = 100,
    ) -> None:
        """List the studies on a DICOMweb server that match (no patient names or IDs are shown)."""
        from rich.console import Console

        from ctlens.io.dicomweb import DicomWebClient

        client = DicomWebClient.from_settings(url)
        studies = client.search_studies(study_uid=study, accession=accession, date=date, modality=modality, limit=limit)
        Console().print(study_table(studies, client.url))


STUDY_COLUMNS = (
    ("study UID", "StudyInstanceUID"),
    ("date", "StudyDate"),
    ("modalities", "ModalitiesInStudy"),
    ("series", "NumberOfStudyRelatedSeries"),
    ("instances", "NumberOfStudyRelatedInstances"),
    ("accession", "AccessionNumber"),
)
"""The columns of ``ctlens search``: header and DICOM keyword (nothing that identifies the patient)."""


def study_table(studies: list[dict[str, Any]], title: str) -> Any:
    """A rich table of QIDO-RS study results with the :data:`STUDY_COLUMNS` only.

    Example:
        >>> from rich.console import Console
        >>> model = {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}
        >>> model["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "Doe"}]}
        >>> console = Console(width=120)
        >>> with console.capture() as out:
        ...     console.print(study_table([model], "server"))
        >>> "1.2.3" in out.get(), "Doe" in out.get()
        (True, False)

    The archive's values are shown as plain text: no console markup, no control characters, at most 64 characters.
    """
    from rich.table import Table
    from rich.text import Text

    from ctlens.io.dicomweb import dicom_json_value

    def cell(value: Any) -> Text:
        text = "" if value is None else str(value)[:64]
        return Text("".join(ch if ch.isprintable() else "?" for ch in text))

    table = Table(title=Text(f"{title}: {len(studies)} stud{'y' if len(studies) == 1 else 'ies'}"))
    for header, _ in STUDY_COLUMNS:
        table.add_column(header, overflow="fold", min_width=None if header == "study UID" else len(header))
    for model in studies:
        table.add_row(*(cell(dicom_json_value(model, keyword)) for _, keyword in STUDY_COLUMNS))
    return table
