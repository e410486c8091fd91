"""``ctlens analyze-eval SERIES... --voc DIR | --masks PATH | --coords CSV``: score the analysis on annotated series.

Runs ``ctlens analyze`` on every series (a folder holding several DICOM series counts as all of them) and prints,
per series and overall, the rank of each annotated lesion, its box IoU, the FROC sensitivity at 1/2/4 false
candidates per scan and LAA-950 per kernel (:mod:`ctlens.analysis.evaluation`). Series used to develop the
analysis (Lung_Dx-A0002, and those named by ``--dev-series`` / ``--dev-series-file``) are marked, and every
overall figure is also given for the held-out series alone. ``--out`` writes everything as JSON.

``ctlens analyze-eval --synthetic N --seed S``: the held-out synthetic evaluation instead
(:mod:`ctlens.analysis.synthetic_eval`): N fresh chest and N head phantoms from seed S (S >= 10000; development
seeds are refused).

Example:
    >>> import typer
    >>> app = typer.Typer(); register(app)
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--help"]).exit_code
    0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors


def expand_series(paths: list[Path]) -> list[Path]:
    """Each path as given, except a folder without DICOM files of its own: the DICOM series folders below it.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> expand_series([folder]) == [folder]
        True
    """
    from ctlens.core.errors import InputNotFoundError
    from ctlens.io.dicom_headers import dicom_folders

    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputNotFoundError("no such series file or folder", path=path)
        found = dicom_folders(path) if path.is_dir() else []
        out.extend(found if found and path not in found else [path])
    return out


def read_dev_names(path: Path) -> list[str]:
    """Names of development series, one a line (``#`` starts a comment).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "dev.txt"
        >>> _ = p.write_text("Lung_Dx-A0002  # tuned on it\\n\\nLIDC-0001\\n")
        >>> read_dev_names(p)
        ['Lung_Dx-A0002', 'LIDC-0001']
    """
    from ctlens.core.errors import InputNotFoundError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputNotFoundError(f"cannot read the development series list ({type(exc).__name__})", path=path) from exc
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def register(app: typer.Typer) -> None:
    """Add the ``analyze-eval`` command to ``app``."""

    @app.command("analyze-eval")
    @one_line_errors
    def analyze_eval_command(
        paths: Annotated[
            list[Path] | None, typer.Argument(help="series (DICOM folders, NIfTI, MHA...) or folders of them")
        ] = None,
        voc: Annotated[
            Path | None, typer.Option(help="folder of PASCAL VOC XML boxes named <SOPInstanceUID>.xml (recursive)")
        ] = None,
        masks: Annotated[
            Path | None, typer.Option(help="lesion mask file (one series) or folder of masks named like the series")
        ] = None,
        coords: Annotated[
            Path | None, typer.Option(help="CSV: seriesuid, coordX, coordY, coordZ, diameter_mm (LPS mm, LUNA16)")
        ] = None,
        dev_series: Annotated[
            list[str] | None, typer.Option(help="a series (path part) used while developing the analysis; repeatable")
        ] = None,
        dev_series_file: Annotated[
            Path | None, typer.Option(help="file with development series names, one a line")
        ] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="results JSON to write")] = None,
        synthetic: Annotated[
            int | None, typer.Option(help="held-out synthetic evaluation: N fresh chest and N head phantoms")
        ] = None,
        seed: Annotated[
            int | None, typer.Option(help="seed of --synthetic; >= 10000, never a development seed")
        ] = None,
        grid_scale: Annotated[
            float, typer.Option(help="--synthetic: multiply every voxel size by this (> 1: coarse, quick check)")
        ] = 1.0,
    ) -> None:
        """Evaluate the analysis on annotated series: lesion ranks, FROC, box IoU, LAA-950 per kernel."""
        from ctlens.analysis.evaluation import format_report, format_series, run_evaluation
        from ctlens.io.files import atomic_output

        if synthetic is not None:
            _synthetic(synthetic, seed, paths, out, grid_scale)
            return
        if not paths:
            raise typer.BadParameter("give series to evaluate, or --synthetic N --seed S")

        names = list(dev_series or [])
        if dev_series_file is not None:
            names += read_dev_names(dev_series_file)
        series = expand_series(paths)
        report = run_evaluation(
            series,
            voc=voc,
            masks=masks,
            coords=coords,
            dev_series=names,
            on_series=lambda r: [typer.echo(line) for line in format_series(r)],
        )
        for line in format_report(report)[sum(len(format_series(r)) for r in report.series) :]:
            typer.echo(line)
        if out is not None:
            with atomic_output(out) as tmp:
                Path(tmp).write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
            typer.echo(f"wrote {out}")
        if report.series and all(r.error for r in report.series):
            raise typer.Exit(2)


def _synthetic(n: int, seed: int | None, paths: list[Path] | None, out: Path | None, scale: float) -> None:
    """Run and print the held-out synthetic evaluation; write its JSON to ``out``."""
    from ctlens.analysis.synthetic_eval import format_synthetic, run_synthetic
    from ctlens.io.files import atomic_output

    if paths:
        raise typer.BadParameter("--synthetic takes no series")
    if seed is None:
        raise typer.BadParameter("--synthetic needs --seed S (a fresh seed >= 10000)")
    if not 0.5 <= scale <= 4.0:
        raise typer.BadParameter(f"--grid-scale must be within 0.5..4, got {scale}")
    report = run_synthetic(n, seed, scale=scale, on_case=typer.echo)
    for line in format_synthetic(report):
        typer.echo(line)
    if out is not None:
        with atomic_output(out) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        typer.echo(f"wrote {out}")
