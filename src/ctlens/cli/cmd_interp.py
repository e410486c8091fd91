"""``ctlens interpolate`` and ``ctlens interp eval | train-vae | train``: thick-slice CT to thin slices.

Example:
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    >>> sorted(c.name for c in app.registered_commands), [g.name for g in app.registered_groups]
    (['interpolate'], ['interp'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors
from ctlens.cli.series import SeriesOption

interp_app = typer.Typer(
    help="Slice interpolation: evaluation harness and latent-diffusion training.", no_args_is_help=True
)


@one_line_errors
def interpolate_command(
    src: Annotated[Path, typer.Argument(help="input CT: DICOM folder/zip, NIfTI, NRRD/MHA")],
    out: Annotated[Path, typer.Argument(help="output .nii.gz / .nii / .nrrd / .mha (written atomically)")],
    spacing: Annotated[float | None, typer.Option(help="new slice spacing in mm")] = None,
    factor: Annotated[float | None, typer.Option(help="or: output slices per input slice (>= 1)")] = None,
    method: Annotated[str, typer.Option(help="nearest | linear | cubic | flow | self_supervised | ldm")] = "flow",
    series: SeriesOption = None,
    checkpoint: Annotated[Path | None, typer.Option(help="LDM checkpoint (method ldm)")] = None,
    profile: Annotated[str, typer.Option(help="self_supervised: slab (real thick slices) | drop")] = "slab",
    steps: Annotated[int, typer.Option(help="self_supervised: training steps")] = 200,
) -> None:
    """Interpolate SRC to thin slices (--spacing mm or --factor) and save OUT."""
    from rich.console import Console

    from ctlens.cli.progress import progress_step
    from ctlens.cli.series import load_study
    from ctlens.io import save
    from ctlens.pipelines.interp.interpolate import interpolate

    if spacing is None and factor is None:
        spacing = 1.0
    method_options: dict = {}
    if method == "ldm":
        method_options["checkpoint"] = checkpoint
    if method == "self_supervised":
        method_options.update(profile=profile, steps=steps)
    with progress_step(f"{method} interpolation of {src.name}") as step:
        step.phase("reading")
        volume = load_study(src, series, uneven="resample")
        result = interpolate(
            volume, spacing_z=spacing, factor=factor, method=method, name=str(src), progress=step, **method_options
        )
        step.phase("writing")
        save(result, out)
    sp = tuple(round(s, 4) for s in result.spacing)
    Console().print(f"wrote {out}: {volume.shape[0]} -> {result.shape[0]} slices, spacing {sp} mm ({method})")


@interp_app.command("eval")
@one_line_errors
def eval_command(
    data: Annotated[Path, typer.Argument(help="a CT or a folder of CTs (e.g. ../shared/data)")],
    out: Annotated[Path, typer.Option(help="folder for results.json, results.md and PNG grids")] = Path("interp_eval"),
    factor: Annotated[list[int] | None, typer.Option(help="integer factor(s), repeatable")] = None,
    methods: Annotated[str, typer.Option(help="comma-separated")] = "nearest,linear,cubic,flow,self_supervised",
    simulation: Annotated[list[str] | None, typer.Option(help="drop and/or slab (repeatable)")] = None,
    axis: Annotated[str, typer.Option(help="ground-truth axis: auto | z | y | x")] = "auto",
    smore_steps: Annotated[
        int | None, typer.Option(help="self_supervised training steps (default: the method's own)")
    ] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="LDM checkpoint when methods include ldm")] = None,
    smore_profile: Annotated[
        str, typer.Option(help="self_supervised told the simulation's profile: matched | mismatched | both")
    ] = "both",
) -> None:
    """Score interpolation methods on simulated thick slices; only synthesised slices count.

    Every method is averaged over the same cases (a failure shows as failing); through-plane and in-plane
    cases are also summarised on their own; the gain over cubic has a bootstrap CI over studies.
    """
    from rich.console import Console

    from ctlens.core.errors import InterpolationError
    from ctlens.pipelines.interp.evaluation import run_eval

    profiles = {"matched": ("matched",), "mismatched": ("mismatched",), "both": ("matched", "mismatched")}
    if smore_profile not in profiles:
        raise InterpolationError(f"--smore-profile must be matched, mismatched or both, got {smore_profile!r}")
    smore = {} if smore_steps is None else {"steps": smore_steps}
    options = {"self_supervised": smore, "ldm": {"checkpoint": checkpoint}}
    result = run_eval(
        data,
        out,
        factors=tuple(factor or [4]),
        simulations=tuple(simulation or ["drop", "slab"]),
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        axis=axis,
        options=options,
        smore_profiles=profiles[smore_profile],
    )
    console = Console()
    console.print(result["paths"]["md"].read_text().split("## Per case")[0])
    console.print(
        f"wrote {result['paths']['json']}, {result['paths']['md']} and {len(result['paths']['grids'])} PNG grids"
    )


def _train(kind: str, config: Path, steps: int | None) -> None:
    from rich.console import Console

    from ctlens.cli.progress import progress_step
    from ctlens.training.ldm.config import load_config
    from ctlens.training.ldm.train import train

    cfg = load_config(config, {"train.steps": steps} if steps else None)
    with progress_step("VAE training" if kind == "vae" else "latent diffusion training") as step:
        result = train(kind, cfg, progress=step)
    last = max(result.losses) if result.losses else None
    loss = f", last loss {result.losses[last]:.4f}" if last is not None else ""
    Console().print(f"{kind}: trained to step {cfg.train.steps}{loss}; checkpoint {result.checkpoint}")


@interp_app.command("train-vae")
@one_line_errors
def train_vae_command(
    config: Annotated[Path, typer.Option(help="YAML, e.g. config/vae_training.yaml")],
    steps: Annotated[int | None, typer.Option(help="override train.steps")] = None,
) -> None:
    """Train the per-slice VAE (resumes from the latest checkpoint; DDP under torchrun)."""
    _train("vae", config, steps)


@interp_app.command("train")
@one_line_errors
def train_command(
    config: Annotated[Path, typer.Option(help="YAML, e.g. config/slice_interpolation.yaml")],
    steps: Annotated[int | None, typer.Option(help="override train.steps")] = None,
) -> None:
    """Train the latent-diffusion slice interpolator (resumes; DDP under torchrun)."""
    _train("ldm", config, steps)


def register(app: typer.Typer) -> None:
    """Add ``interpolate`` and the ``interp`` group to the main app."""
    app.command("interpolate")(interpolate_command)
    app.add_typer(interp_app, name="interp")
