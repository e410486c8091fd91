"""``ctlens prepare`` (one study -> model-grid NIfTI windows, mask and a PNG montage) and
``ctlens preprocess-h5`` (a folder of CT volumes -> one HDF5 file for 3D CLIP training).

Example:
    >>> import typer
    >>> from typer.testing import CliRunner
    >>> app = typer.Typer(); register(app)
    >>> CliRunner().invoke(app, ["prepare", "--help"]).exit_code
    0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ctlens.cli.errors import one_line_errors
from ctlens.cli.series import SeriesOption

if TYPE_CHECKING:
    from ctlens.cli.progress import StepProgress
    from ctlens.core.volume import Volume

console = Console()


def prepare(
    path: Annotated[Path, typer.Argument(help="DICOM folder/zip/file, NIfTI, NRRD/MHA")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder (created if missing)")],
    mode: Annotated[str, typer.Option(help="ct | mri | auto (detect from the data and say why)")] = "auto",
    series: SeriesOption = None,
    z_dim: Annotated[
        int | None,
        typer.Option(help="slice axis of the RPI volume: 0 axial, 1 coronal, 2 sagittal (default: acquired)"),
    ] = None,
    slices: Annotated[int, typer.Option(help="slices per row in the montage")] = 6,
) -> None:
    """Prepare PATH for a NeuroVFM-style model: each window as NIfTI on the model grid, the mask, a PNG montage."""
    from ctlens.cli.progress import progress_step
    from ctlens.cli.series import load_study

    chosen = mode.lower()
    if chosen not in ("ct", "mri", "mr", "auto"):
        raise typer.BadParameter(f"--mode must be ct, mri or auto, got {mode!r}")
    with progress_step(f"prepare {path.name}") as step:
        step.phase("reading")
        vol = load_study(path, series, uneven="resample")
        summary = _prepare_volume(vol, path, out, chosen, z_dim, slices, step)
    spacing = " x ".join(f"{s:g}" for s in summary["spacing"])
    console.print(
        f"{summary['view']} {summary['mode']} -> {tuple(summary['shape'])} voxels (z, y, x), {spacing} mm, "
        f"axes {summary['axcodes']} (array order)"
    )
    console.print(f"wrote {', '.join(summary['files'])}, prepare.json to {out}")


def _prepare_volume(
    vol: Volume, path: Path, out: Path, chosen: str, z_dim: int | None, slices: int, step: StepProgress
) -> dict[str, Any]:
    """Write the windows, mask, montage and prepare.json of ``vol`` into ``out``; returns that summary."""
    from ctlens.io import save
    from ctlens.io.files import atomic_output
    from ctlens.preprocess import axcodes, detect_mode, prepare_for_inference, to_model_grid
    from ctlens.preprocess.montage import save_montage

    if chosen == "auto":
        chosen, reason = detect_mode(vol)
        console.print(f"mode: [bold]{chosen}[/] (detected: {reason})")
    else:
        chosen, reason = ("mri" if chosen == "mr" else chosen), "given with --mode"
        console.print(f"mode: [bold]{chosen}[/] ({reason})")
    step.phase("resampling to the model grid")
    arrs, mask, view = prepare_for_inference(vol, mode=chosen, z_dim=z_dim)
    fill = -1024.0 if chosen == "ct" else 0.0
    grid = to_model_grid(vol, z_dim=z_dim, fill_value=fill)
    if grid.shape != mask.shape:  # both come from to_model_grid; a mismatch would be a bug, never a wrong file
        raise RuntimeError(f"model grid {grid.shape} and prepared arrays {mask.shape} differ")
    step.phase("writing")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, arr in arrs.items():
        target = out / f"{name}.nii.gz"
        save(grid.with_array(arr, modality="OT"), target)
        files.append(target.name)
    save(grid.with_array(mask, modality="SEG"), out / "mask.nii.gz")
    files.append("mask.nii.gz")
    codes = "".join(axcodes(grid))
    spacing = " x ".join(f"{s:g}" for s in grid.spacing)
    title = f"{path.name}: {chosen}, {view}, {grid.shape} voxels, {spacing} mm, axes {codes}"
    save_montage(out / "montage.png", {**arrs, "mask": mask}, n_slices=slices, mask=mask, title=title, volume=grid)
    files.append("montage.png")
    summary = {
        "mode": chosen,
        "mode_reason": reason,
        "view": view,
        "shape": list(grid.shape),
        "spacing": list(grid.spacing),
        "axcodes": codes,
        "nifti_axcodes": codes[::-1],
        "affine_lps_zyx": grid.affine.round(6).tolist(),
        "foreground_fraction": round(float(mask.mean()), 4),
        "files": files,
    }
    with atomic_output(out / "prepare.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def preprocess_h5(
    input: Annotated[Path, typer.Option("--input", "-i", help="folder of volumes (DICOM folders, zips, NIfTI ...)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HDF5 file to write, e.g. volumes.h5")],
    metadata: Annotated[Path | None, typer.Option(help="CSV: volume name -> source and acquisition facts")] = None,
    target_shape: Annotated[tuple[int, int, int], typer.Option(help="output shape z y x (slices, rows, columns)")] = (
        160,
        224,
        224,
    ),
    num_workers: Annotated[int, typer.Option(help="worker processes (0: in this process)")] = 4,
    slice_order: Annotated[str, typer.Option(help="b2u: slice 0 lowest (feet side); u2b: slice 0 highest")] = "b2u",
    hu_min: Annotated[float, typer.Option(help="HU clip low")] = -1000.0,
    hu_max: Annotated[float, typer.Option(help="HU clip high")] = 1000.0,
    compression: Annotated[str, typer.Option(help="none | lzf | gzip")] = "none",
    all_modalities: Annotated[bool, typer.Option(help="export non-CT volumes too (default: record and skip)")] = False,
    hash_names: Annotated[
        bool,
        typer.Option(help="name datasets by a salted SHA-256 of their path (folder names may identify patients)"),
    ] = False,
    hash_salt: Annotated[
        str | None, typer.Option(help="secret salt for --hash-names (default: random; reuse it for the same names)")
    ] = None,
    names_csv: Annotated[
        Path | None, typer.Option(help="with --hash-names: name -> path CSV to keep locally (default OUTPUT.names.csv)")
    ] = None,
    ct_rate_metadata: Annotated[
        Path | None,
        typer.Option("--ct-rate-metadata", help="CT-RATE *_metadata.csv: rescale and geometry of its NIfTI volumes"),
    ] = None,
    ct_rate_axes: Annotated[str, typer.Option(help="CT-RATE NIfTI layout: yxz (row, column, slice) or xyz")] = "yxz",
) -> None:
    """Export every CT volume below INPUT to one HDF5 file (RAS, HU clip, aspect-preserving resize, uint8)."""
    from ctlens.cache.hdf5_export import export_hdf5
    from ctlens.cli.progress import progress_step

    if slice_order not in ("b2u", "u2b"):
        raise typer.BadParameter(f"--slice-order must be b2u or u2b, got {slice_order!r}")
    if compression not in ("none", "lzf", "gzip"):
        raise typer.BadParameter(f"--compression must be none, lzf or gzip, got {compression!r}")
    with progress_step(f"HDF5 export to {output.name}") as step:
        report = export_hdf5(
            input,
            output,
            metadata_csv=metadata,
            target_shape=target_shape,
            num_workers=num_workers,
            slice_order=slice_order,  # type: ignore[arg-type]
            hu_clip=(hu_min, hu_max),
            ct_only=not all_modalities,
            compression=None if compression == "none" else compression,
            name_mode="hash" if hash_names else "path",
            hash_salt=hash_salt,
            names_csv=names_csv,
            ct_rate_metadata=ct_rate_metadata,
            ct_rate_axes=ct_rate_axes,
            progress=step,
        )
    console.print(
        f"wrote {output}: {len(report.written)} volume(s) of {tuple(target_shape)} uint8 in {report.seconds:.1f} s"
        + (f", metadata in {metadata}" if metadata else "")
    )
    if report.names_csv is not None:
        console.print(f"name -> path mapping in {report.names_csv}: keep it locally, never share it with the HDF5")
    if report.stale_removed:
        console.print(f"removed {report.stale_removed} temporary file(s) left by an interrupted export")
    if report.failures:
        table = Table(title=f"{len(report.failures)} input(s) not exported")
        for col in ("name", "source", "reason"):
            table.add_column(col, overflow="fold")
        for row in report.failures:
            table.add_row(*row)
        console.print(table)
    if not report.written:
        console.print("no volume was exported")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``prepare`` and ``preprocess-h5`` to the ``ctlens`` app."""
    app.command("prepare")(one_line_errors(prepare))
    app.command("preprocess-h5")(one_line_errors(preprocess_h5))
