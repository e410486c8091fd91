"""``ctlens analyze PATH --out findings.json --overlays DIR``: quantitative CT findings, ROI and heatmap.

With ``--clip-checkpoint FOLDER`` (default: the ``clip_checkpoint`` setting, ``CTLENS_CLIP_CHECKPOINT``) a 3-D
CT also gets zero-shot finding probabilities from that 3D CLIP (``findings.zero_shot``; model scores, not
diagnoses). Without a checkpoint torch is never imported.

With ``--dicom-out DIR`` (DICOM input only) the findings are also written as DICOM objects that reference the
source instances (``DIR/seg.dcm``, ``DIR/sr.dcm``; ``DIR/sc.dcm`` with ``--dicom-heatmap``): see
:mod:`ctlens.connect.results`. They keep the source's patient and study data, to go back to its archive.

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
from ctlens.cli.series import SeriesOption


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command to ``app``."""

    @app.command("analyze")
    @one_line_errors
    def analyze_command(
        path: Annotated[Path, typer.Argument(help="CT series (DICOM folder/zip, NIfTI, NRRD/MHA) or a 2-D image")],
        out: Annotated[Path | None, typer.Option("--out", "-o", help="findings JSON to write")] = None,
        overlays: Annotated[Path | None, typer.Option(help="folder for the overlay PNG and heatmap .npz")] = None,
        series: SeriesOption = None,
        region: Annotated[str | None, typer.Option(help="force head | chest | image2d")] = None,
        clip_checkpoint: Annotated[
            Path | None,
            typer.Option(
                help="3D CLIP checkpoint folder for zero-shot finding probabilities "
                "(default: $CTLENS_CLIP_CHECKPOINT when set)"
            ),
        ] = None,
        top: Annotated[int, typer.Option(help="zero-shot probabilities to print")] = 5,
        dicom_out: Annotated[
            Path | None,
            typer.Option(help="folder for the results as DICOM (SEG, TID 1500 SR) referencing the source (DICOM only)"),
        ] = None,
        dicom_heatmap: Annotated[
            bool, typer.Option(help="with --dicom-out, also a Secondary Capture of the heatmap overlay")
        ] = False,
    ) -> None:
        """Analyse PATH: body region, lungs / emphysema / nodules or brain / hyperdense regions, or a 2-D ROI."""
        from rich.console import Console

        from ctlens.analysis import analyze, render_overlay
        from ctlens.cli.progress import progress_step
        from ctlens.cli.series import load_study

        console = Console()
        if dicom_out is not None:
            _check_dicom_input(path)
        checkpoint = clip_checkpoint if clip_checkpoint is not None else _configured_checkpoint()
        with progress_step(f"analysis of {path.name}") as step:
            if checkpoint is not None:  # load the model first: a bad checkpoint fails before the long analysis
                from ctlens.pipelines.embed import load_clip

                step.phase("loading the CLIP model")
                load_clip(checkpoint)
            step.phase("reading")
            volume = load_study(path, series, uneven="resample")  # analysis needs even slices
            step.phase("analysing")
            findings = analyze(volume, region=region)
            if checkpoint is not None:
                from ctlens.pipelines.zero_shot import add_zero_shot

                step.phase("zero-shot findings")
                add_zero_shot(findings, volume, checkpoint)
            step.phase("writing")
            if out is not None:
                findings.save(out)
            if overlays is not None:
                overlays.mkdir(parents=True, exist_ok=True)
                render_overlay(volume, findings, overlays / "overlay.png")
                findings.save_arrays(overlays / "arrays.npz")
            dicom_paths = []
            if dicom_out is not None:
                from ctlens.connect.results import write_dicom_results

                dicom_paths = write_dicom_results(findings, volume, path, dicom_out, heatmap=dicom_heatmap)
        console.print(f"[bold]{path}[/]: region {findings.region}, {len(findings.candidates)} candidate(s)")
        for key, value in findings.measurements.items():
            if not isinstance(value, dict):
                console.print(f"  {key}: {value}")
        if findings.zero_shot:
            console.print("  zero-shot probabilities (model scores, not diagnoses):")
            ranked = sorted(findings.zero_shot.items(), key=lambda kv: kv[1], reverse=True)
            for name, prob in ranked[: max(top, 0)]:
                console.print(f"    {name}: {prob:.2f}")
        for rank, c in enumerate(findings.candidates[:10], start=1):
            z, y, x = (round(v) for v in c.centre_voxel)
            console.print(
                f"  #{rank} {c.kind} {c.side} score {c.score:.2f}, {c.diameter_mm:.0f} mm at voxel ({z}, {y}, {x})"
            )
        for w in findings.warnings:
            console.print(f"  [yellow]warning[/]: {w}")
        if out is not None:
            console.print(f"wrote {out}")
        for dicom_path in dicom_paths:
            console.print(f"wrote {dicom_path}")
        if dicom_out is not None and not any(p.name == "seg.dcm" for p in dicom_paths):
            console.print("  no SEG written: nothing to segment")


def _check_dicom_input(path: Path) -> None:
    """``--dicom-out`` needs a DICOM input (results reference its instances)."""
    from ctlens.core.errors import UnsupportedFormatError
    from ctlens.io.loader import file_kind

    if file_kind(path) != "dicom":
        raise UnsupportedFormatError(
            f"--dicom-out needs a DICOM series, not a {file_kind(path)} file",
            path=path,
            hint="give the DICOM folder, zip or files the series came from",
        )


def _configured_checkpoint() -> Path | None:
    """The ``clip_checkpoint`` setting (``CTLENS_CLIP_CHECKPOINT``), or None."""
    from ctlens.core.settings import get_settings

    return get_settings().clip_checkpoint
