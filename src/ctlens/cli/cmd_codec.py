"""``ctlens compress`` / ``ctlens decompress``: series <-> ``.ctz`` (lossless or ROI-lossless).

DICOM folders and zips are streamed (:mod:`ctlens.io.dicom_stream`: bounded memory, the same ``.ctz`` as
``--in-memory``); NIfTI/NRRD/MHA and single files are loaded whole.

Example:
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    >>> sorted(c.callback.__name__ for c in app.registered_commands)
    ['compress', 'decompress']
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ctlens.cli.errors import one_line_errors
from ctlens.cli.series import SeriesOption


def _report(out: Path, stats: Any, mode: str) -> None:
    from rich.console import Console

    extra = f", ROI {stats.roi_coverage:.0%}, max error {stats.max_error} HU" if mode == "roi" else ""
    Console().print(
        f"{out}: {stats.n_slices} slices, {stats.raw_bytes / 1e6:.1f} MB -> {stats.encoded_bytes / 1e6:.2f} MB "
        f"(ratio {stats.ratio:.2f}{extra}) in {stats.encode_seconds:.2f} s"
    )


def register(app: typer.Typer) -> None:
    """Add the ``compress`` and ``decompress`` commands to ``app``."""

    @app.command()
    @one_line_errors
    def compress(
        path: Annotated[Path, typer.Argument(help="DICOM folder/zip/file, NIfTI, NRRD/MHA")],
        out: Annotated[Path, typer.Argument(help="output .ctz file")],
        mode: Annotated[str, typer.Option(help="lossless | roi (ROI exact, background within --max-error)")] = (
            "lossless"
        ),
        max_error: Annotated[
            int, typer.Option("--max-error", min=0, max=127, help="HU error bound outside the ROI (roi mode)")
        ] = 5,
        profile: Annotated[
            str,
            typer.Option(
                help="compact (JPEG-LS) | fast (HTJ2K) | small (+JPEG XL e3) | smallest (+JPEG XL e7) | thorough"
            ),
        ] = "compact",
        series: SeriesOption = None,
        uneven: Annotated[
            str, typer.Option(help="uneven slice spacing: resample (onto an even grid) | keep | error")
        ] = "resample",
        stream: Annotated[
            bool,
            typer.Option(
                "--stream/--in-memory",
                help="DICOM folders/zips: decode and encode slice by slice in bounded memory (default), "
                "or load the whole series first (same .ctz)",
            ),
        ] = True,
    ) -> None:
        """Compress PATH into OUT (.ctz): bit-exact, or ROI-exact with --mode roi."""

        from ctlens.cli.progress import progress_step
        from ctlens.cli.series import check_series_input, load_study
        from ctlens.codec.series import PROFILES, encode_slices, encode_volume
        from ctlens.io.dicom_pixels import exact_int16
        from ctlens.io.dicom_reader import UNEVEN_POLICIES

        if mode not in ("lossless", "roi"):
            raise typer.BadParameter("--mode must be lossless or roi")
        if profile not in PROFILES:
            raise typer.BadParameter(f"--profile must be one of {', '.join(PROFILES)}")
        if uneven not in UNEVEN_POLICIES:
            raise typer.BadParameter(f"--uneven must be one of {', '.join(UNEVEN_POLICIES)}")
        check_series_input(path, series)
        is_series = path.is_dir() or path.suffix.lower() == ".zip"
        with progress_step(f"compress {path.name}") as step:
            options = {"mode": mode, "max_error": max_error, "profile": profile, "progress": step}
            if stream and is_series:
                from ctlens.io.dicom_stream import iter_series_slices

                # Headers first (same order, geometry and meta as ctlens.load), then one slice at a time into the
                # streaming encoder: memory holds a few slices, not the series. The meta is de-identified by the
                # reader (its series plan), exactly as for the in-memory path.
                step.phase("reading the headers")
                with iter_series_slices(path, series=series, uneven=uneven) as slices:  # type: ignore[arg-type]
                    stats = encode_slices(slices, out, geometry=slices.geometry, n_slices=len(slices), **options)
            else:
                step.phase("reading")
                volume = load_study(path, series, uneven=uneven)
                arr = volume.array
                if arr.dtype.kind == "f":
                    volume = volume.with_array(
                        exact_int16(arr, path, ".ctz stores integer samples", "save it as NIfTI instead")
                    )
                stats = encode_volume(volume, out, **options)
        _report(out, stats, mode)

    @app.command()
    @one_line_errors
    def decompress(
        path: Annotated[Path, typer.Argument(help="input .ctz file or its JSON export")],
        out: Annotated[Path, typer.Argument(help="output image (.nii.gz, .nii, .nrrd, .mha)")],
    ) -> None:
        """Decompress a .ctz file (checksums verified) and write it as NIfTI / NRRD / MHA."""
        from rich.console import Console

        from ctlens.cli.progress import progress_step
        from ctlens.codec.series import decode_volume
        from ctlens.io import save

        with progress_step(f"decompress {path.name}") as step:
            volume = decode_volume(path, progress=step)
            step.phase("writing")
            save(volume, out)
        Console().print(f"{out}: {volume.shape[0]} slices of {volume.shape[1]}x{volume.shape[2]} written")
