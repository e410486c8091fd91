"""``ctlens analyze PATH --out findings.json --overlays DIR``: quantitative CT findings, ROI and heatmap.

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


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command to ``app``."""

    @app.command("analyze")
    @one_line_errors
    def analyze_command(
        path: Annotated[Path, typer.Argument(help="CT series (DICOM folder/zip, NIfTI, NRRD/MHA) or a 2-D image")],
        out: Annotated[Path | None, typer.Option("--out", "-o", help="findings JSON to write")] = None,
        overlays: Annotated[Path | None, typer.Option(help="folder for the overlay PNG and heatmap .npz")] = None,
        region: Annotated[str | None, typer.Option(help="force head | chest | image2d")] = None,
    ) -> None:
        """Analyse PATH: body region, lungs / emphysema / nodules or brain / hyperdense regions, or a 2-D ROI."""
        from rich.console import Console
        from rich.progress import Progress

        from ctlens.analysis import analyze, load_for_analysis, render_overlay

        console = Console()
        with Progress(transient=True, console=Console(stderr=True)) as progress:
            task = progress.add_task("loading", total=3)
            volume = load_for_analysis(path)
            progress.update(task, advance=1, description="analysing")
            findings = analyze(volume, region=region)
            progress.update(task, advance=1, description="writing")
            if out is not None:
                findings.save(out)
            if overlays is not None:
                overlays.mkdir(parents=True, exist_ok=True)
                render_overlay(volume, findings, overlays / "overlay.png")
                findings.save_arrays(overlays / "arrays.npz")
            progress.update(task, advance=1)
        console.print(f"[bold]{path}[/]: region {findings.region}, {len(findings.candidates)} candidate(s)")
        for key, value in findings.measurements.items():
            if not isinstance(value, dict):
                console.print(f"  {key}: {value}")
        for rank, c in enumerate(findings.candidates[:10], start=1):
            z, y, x = (round(v) for v in c.centre_voxel)
            console.print(
                f"  #{rank} {c.kind} {c.side} score {c.score:.2f}, {c.diameter_mm:.0f} mm at voxel ({z}, {y}, {x})"
            )
        for w in findings.warnings:
            console.print(f"  [yellow]warning[/]: {w}")
        if out is not None:
            console.print(f"wrote {out}")
