"""``ctlens`` commands: info, convert, deid, and those each ``cmd_<topic>`` module registers.

Example:
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--help"]).exit_code
    0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ctlens.cli.errors import one_line_errors
from ctlens.cli.group import CtlensGroup
from ctlens.cli.series import SeriesOption, VolumeOption, check_series_input, load_study
from ctlens.core.volume import Volume

app = typer.Typer(help="ctlens: AI on CT scans.", no_args_is_help=True, add_completion=False, cls=CtlensGroup)
console = Console()


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show info messages")] = False) -> None:
    """ctlens: read, prepare, compress, analyse and serve CT scans."""
    from ctlens.cli.grouped_log import install

    install(verbose)


def _dicom_inputs(path: Path) -> list[Path]:
    """Folders holding several inputs (like the sample data) are shown input by input."""
    from ctlens.io.loader import file_kind

    if path.is_dir():
        images = [p for p in sorted(path.rglob("*")) if p.is_file() and file_kind(p) in ("nifti", "itk")]
        return [path, *images]
    return [path]


@app.command()
@one_line_errors
def info(
    path: Annotated[Path, typer.Argument(help="DICOM folder/zip/file, NIfTI, NRRD/MHA or image")],
    series: SeriesOption = None,
) -> None:
    """Show the series found in PATH and the geometry of each (with --series: of that one)."""
    from ctlens.io import list_series, load
    from ctlens.io.loader import file_kind

    check_series_input(path, series)
    for item in _dicom_inputs(path):
        if file_kind(item) != "dicom":
            if series is None:
                _print_volume(str(item), load(item))
            continue
        series_list = list_series(item)
        table = Table(title=f"{item}: {len(series_list)} series")
        split = any(s.part for s in series_list)  # acquisitions, echoes... of one series: which part, and its key
        columns = ("#", "study", "description", *(("part", "key") if split else ()), "modality", "kernel")
        for col in (*columns, "orientation", "slices", "matrix"):
            table.add_column(col, overflow="fold")
        for s in series_list:
            table.add_row(
                str(s.index),
                s.study_id,
                s.description,
                *((s.part or "-", s.series_id) if split else ()),
                s.modality,
                s.kernel,
                s.orientation,
                str(s.n_slices),
                f"{s.rows}x{s.columns}",
            )
        Console().print(table)  # sized now: COLUMNS as it is when the command runs, not at import
        if series is not None:
            volume = load_study(item, series)
            _print_volume(f"{item} --series {series}: {volume.meta.get('series_selection', '')}", volume)
            continue
        for s in series_list:
            part = f" ({s.part})" if s.part else ""
            _print_volume(f"{item} #{s.index} {s.description}{part}", load(item, series=s.index))


def _print_volume(name: str, vol: Volume) -> None:
    sp = " x ".join(f"{v:.4g}" for v in vol.spacing)
    n_volumes = int(vol.meta.get("n_volumes") or 1)
    shown = int(vol.meta.get("volume_index") or 0)
    volumes = f", {n_volumes} volumes (volume {shown} shown, 0-based)" if n_volumes > 1 else ""
    console.print(f"[bold]{name}[/]: {vol.shape} voxels (z, y, x), spacing {sp} mm, {vol.modality}{volumes}")
    console.print(f"  values {vol.array.min()} .. {vol.array.max()} ({vol.array.dtype}), origin {vol.origin} (LPS mm)")


@app.command()
@one_line_errors
def convert(
    path: Annotated[Path, typer.Argument(help="input image or DICOM series")],
    out: Annotated[Path, typer.Argument(help="output .nii.gz, .nii, .nrrd, .mha or .mhd")],
    series: SeriesOption = None,
    tilt: Annotated[str, typer.Option(help="gantry tilt: correct | refuse")] = "correct",
    uneven: Annotated[
        str,
        typer.Option(
            help="uneven spacing or missing slices: resample (onto an even grid spanning the slices) | keep "
            "(the acquired slices at the usual step) | error"
        ),
    ] = "resample",
    volume: VolumeOption = None,
) -> None:
    """Convert PATH to a NIfTI/NRRD/MHA file (written atomically).

    A DICOM series of several volumes (time points, diffusion directions) becomes one 4-D NIfTI file, as dcm2niix
    writes it, with FSL .bval/.bvec files beside it for a diffusion series; --volume k writes volume k alone
    (NRRD/MHA: volume 0 unless --volume).
    """
    from ctlens.io import save
    from ctlens.io.loader import file_kind

    extra = {} if volume is None else {"volume": volume}
    check_series_input(path, series)  # --series with a single-volume file: one clear error
    if volume is None and file_kind(out) == "nifti" and file_kind(path) in ("dicom", "nifti"):
        from ctlens.io import load_volumes

        volumes = load_volumes(path, series, tilt=tilt, uneven=uneven)
        if len(volumes) > 1:
            _write_4d(volumes, out)
            return
        vol = volumes[0]
    else:
        vol = load_study(path, series, tilt=tilt, uneven=uneven, **extra)
    save(vol, out)
    console.print(f"wrote {out}: {vol.shape} voxels, spacing {tuple(round(s, 4) for s in vol.spacing)} mm")


def _write_4d(volumes: list[Volume], out: Path) -> None:
    """All volumes of one series as a 4-D NIfTI, with .bval/.bvec for diffusion (``convert``'s docstring)."""
    from ctlens.io.nifti_volumes import write_nifti_volumes

    meta = volumes[0].meta
    written = write_nifti_volumes(volumes, out, bvals=meta.get("bvals"), bvecs=meta.get("bvecs"))
    vol = volumes[0]
    spacing = tuple(round(s, 4) for s in vol.spacing)
    console.print(f"wrote {out}: {len(volumes)} volumes of {vol.shape} voxels, spacing {spacing} mm")
    for extra_file in written[:-1]:
        console.print(f"wrote {extra_file}")


@app.command()
@one_line_errors
def deid(
    src: Annotated[Path, typer.Argument(help="a DICOM file or folder")],
    dst: Annotated[Path, typer.Argument(help="output file or folder (must not exist inside SRC)")],
    salt: Annotated[
        str | None,
        typer.Option(
            help="secret mixed into the UID hashes (same salt, same hashes; default: $CTLENS_UID_SALT, else none)"
        ),
    ] = None,
) -> None:
    """De-identify DICOM (PS3.15 Basic Profile): identifiers removed, UIDs hashed with a salt, private tags dropped."""
    from ctlens.io.deid import deidentify_path

    reports = deidentify_path(src, dst, salt=salt)
    removed = sum(len(r.removed) + len(r.emptied) + len(r.replaced) for r in reports)
    console.print(f"de-identified {len(reports)} file(s) into {dst}: {removed} attributes removed or replaced")


def _register_command_modules() -> None:
    """Each ``ctlens.cli.cmd_<topic>`` module adds its commands with ``register(app)`` (heavy imports stay lazy)."""
    import importlib
    import pkgutil

    import ctlens.cli as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name.startswith("cmd_"):
            importlib.import_module(f"ctlens.cli.{module.name}").register(app)


_register_command_modules()
