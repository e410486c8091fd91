"""``ctlens clip``: train, split, evaluate and zero-shot with the 3D CLIP (torch imported only when run).

Example:
    >>> import typer
    >>> from typer.testing import CliRunner
    >>> app = typer.Typer(); register(app)
    >>> CliRunner().invoke(app, ["clip", "--help"]).exit_code
    0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors
from ctlens.cli.series import SeriesOption

clip_app = typer.Typer(help="3D CLIP for CT: train, split, evaluate, zero-shot findings.", no_args_is_help=True)


@clip_app.command("synthetic")
@one_line_errors
def synthetic_cmd(
    out: Annotated[Path, typer.Argument(help="folder for volumes.h5, reports.csv, labels.csv")],
    n: Annotated[int, typer.Option("--n", help="volumes (two re-scans per patient)")] = 1024,
    seed: Annotated[int, typer.Option(help="generator seed (use another seed for held-out data)")] = 1,
    prefix: Annotated[str, typer.Option(help="prefix of the volume names (keeps held-out patients apart)")] = "",
    kind: Annotated[
        str, typer.Option(help="planted (intensity findings) | spatial (a grey-level histogram cannot solve it)")
    ] = "planted",
) -> None:
    """Write the synthetic chest-CT benchmark (planted findings, templated reports) in CT-RATE layout."""
    from ctlens.training.clip.synthetic import write_synthetic_ct_rate

    if kind not in ("planted", "spatial"):
        raise typer.BadParameter(f"--kind must be planted or spatial, got {kind!r}")
    paths = write_synthetic_ct_rate(out, n, seed=seed, prefix=prefix, kind=kind)
    typer.echo("wrote " + ", ".join(str(paths[k]) for k in ("h5", "reports", "labels")))


@clip_app.command("split")
@one_line_errors
def split_cmd(
    ct: Annotated[Path, typer.Option("--ct", help="HDF5 volumes (ctlens preprocess-h5)")],
    reports: Annotated[Path | None, typer.Option(help="reports CSV (volumes without text are left out)")] = None,
    out: Annotated[Path, typer.Option(help="output JSON {train: [...], val: [...]}")] = Path("split.json"),
    target_val_size: Annotated[int, typer.Option(help="validation volumes (whole patients)")] = 500,
    seed: Annotated[int, typer.Option(help="shuffle seed")] = 42,
    patient_column: Annotated[
        str | None, typer.Option(help="reports CSV column naming each volume's patient (else parsed from names)")
    ] = None,
) -> None:
    """Patient-wise train/validation split of the volumes in --ct."""
    from ctlens.data.ct_report import CTReportDataset, patient_ids, patient_split
    from ctlens.io.files import atomic_output

    ds = CTReportDataset(ct, reports, patient_column=patient_column)
    train, val = patient_split(ds.names, target_val_size, seed, patients=ds.patient_map)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps({"seed": seed, "train": train, "val": val}, indent=1))
    n_pat = len(set(patient_ids(val, ds.patient_map)))
    typer.echo(f"wrote {out}: {len(train)} train, {len(val)} validation volumes ({n_pat} patients)")


@clip_app.command("train")
@one_line_errors
def train_cmd(
    ct: Annotated[Path, typer.Option("--ct", help="HDF5 volumes")],
    reports: Annotated[Path, typer.Option(help="reports CSV")],
    labels: Annotated[Path | None, typer.Option(help="labels CSV (for zero-shot validation)")] = None,
    split: Annotated[Path | None, typer.Option(help="split JSON from `ctlens clip split`")] = None,
    val_size: Annotated[int, typer.Option(help="validation volumes when no --split is given")] = 500,
    model: Annotated[str, typer.Option(help="model config name (clip3d/configs) or JSON path")] = "ctclip-dinov2-small",
    out_dir: Annotated[Path, typer.Option(help="run folder (checkpoints, metrics)")] = Path("runs/clip"),
    batch_size: Annotated[int, typer.Option(help="volumes per process per micro-batch")] = 32,
    epochs: Annotated[int, typer.Option()] = 40,
    max_steps: Annotated[int, typer.Option(help="stop after this many steps (0: epochs decide)")] = 0,
    lr: Annotated[float, typer.Option()] = 1e-4,
    warmup_steps: Annotated[int, typer.Option()] = 500,
    accumulate: Annotated[int, typer.Option(help="micro-batches per optimizer step")] = 1,
    amp: Annotated[str, typer.Option(help="auto | off | bf16 | fp16")] = "auto",
    freeze_backbone: Annotated[bool, typer.Option("--freeze-backbone", help="keep DINOv2 frozen")] = False,
    grad_checkpointing: Annotated[bool | None, typer.Option(help="override the config's setting")] = None,
    validate_every: Annotated[int, typer.Option()] = 200,
    save_every: Annotated[int, typer.Option()] = 1000,
    num_workers: Annotated[int, typer.Option()] = 2,
    resume: Annotated[str | None, typer.Option(help="checkpoint folder or 'latest'")] = None,
    seed: Annotated[int, typer.Option()] = 42,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (not on biases, norms, temperature)")] = 0.1,
    sentences: Annotated[
        int, typer.Option(help="pair each volume with 1..N random report sentences per step (0: whole text)")
    ] = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's default)")] = 0,
    allow_random_init: Annotated[
        bool,
        typer.Option("--allow-random-init", help="train even when the config's DINOv2 weights are not found"),
    ] = False,
) -> None:
    """Train a 3D CLIP (also under `torchrun --nproc_per_node=N -m ctlens clip train ...`)."""
    from ctlens.models.clip3d import load_config
    from ctlens.models.clip3d.visual import require_backbone_weights
    from ctlens.training.clip.train import ClipTrainConfig, train_clip

    if resume is None:  # a resumed run loads its own weights
        typer.echo(f"visual backbone: {require_backbone_weights(load_config(model).vision, allow_random_init)}")

    cfg = ClipTrainConfig(
        ct=str(ct),
        reports=str(reports),
        labels=str(labels) if labels else None,
        split=str(split) if split else None,
        val_size=val_size,
        model=model,
        out_dir=str(out_dir),
        batch_size=batch_size,
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        warmup_steps=warmup_steps,
        accumulate=accumulate,
        amp=amp,
        allow_random_init=allow_random_init,
        freeze_backbone=freeze_backbone,
        grad_checkpointing=grad_checkpointing,
        validate_every=validate_every,
        save_every=save_every,
        num_workers=num_workers,
        resume=resume,
        seed=seed,
        weight_decay=weight_decay,
        sentences=sentences,
        threads=threads,
    )
    from ctlens.cli.progress import progress_step

    with progress_step("CLIP training") as step:
        result = train_clip(cfg, progress=step)
    typer.echo(
        f"trained {result.steps} steps; model in {result.run_dir / 'model'}; log {result.run_dir / 'metrics.csv'}"
    )


def read_split(path: Path, keys: tuple[str, ...]) -> dict[str, list[str]]:
    """The volume-name lists ``keys`` of a split JSON; a fault raises :class:`CorruptFileError` naming the file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "split.json"
        >>> _ = path.write_text('{"val": ["a"], "test": ["b", "c"]}')
        >>> read_split(path, ("test", "val"))
        {'test': ['b', 'c'], 'val': ['a']}
        >>> _ = path.write_text('{"val": ["a"]}')
        >>> read_split(path, ("test", "val"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.core.errors.CorruptFileError: .../split.json: no list "test" in the split (it has: val)
    """
    from ctlens.core.errors import CorruptFileError

    name = str(path)  # as the user gave it
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise CorruptFileError(f"cannot read the split ({exc.strerror or exc})", path=name) from None
    except RecursionError:
        raise CorruptFileError("split JSON nested too deeply", path=name) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise CorruptFileError(f"not a split JSON ({str(exc).splitlines()[0][:120]})", path=name) from None
    if not isinstance(document, dict):
        raise CorruptFileError("a split JSON is an object of name lists", path=name)
    out: dict[str, list[str]] = {}
    for key in keys:
        if key not in document:
            present = ", ".join(sorted(str(k) for k in document)[:10]) or "no keys"
            raise CorruptFileError(f'no list "{key}" in the split (it has: {present})', path=name)
        names = document[key]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CorruptFileError(f'"{key}" in the split is not a list of volume names', path=name)
        out[key] = names
    return out


@clip_app.command("evaluate")
@one_line_errors
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder (model.safetensors + config.json)")],
    ct: Annotated[Path, typer.Option("--ct", help="HDF5 volumes")],
    reports: Annotated[Path, typer.Option(help="reports CSV")],
    labels: Annotated[Path, typer.Option(help="labels CSV")],
    split: Annotated[Path, typer.Option(help="JSON with 'val' (thresholds) and 'test' lists, disjoint patients")],
    test_key: Annotated[str, typer.Option(help="key of the test list in --split")] = "test",
    patient_column: Annotated[
        str | None, typer.Option(help="reports CSV column naming each volume's patient (else parsed from names)")
    ] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("clip_eval"),
    n_boot: Annotated[int, typer.Option(help="bootstrap draws")] = 1000,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="prompt ensemble")] = False,
) -> None:
    """Zero-shot evaluation: AUROC with patient bootstrap CIs, validation thresholds, peers' protocol beside."""
    from ctlens.data.ct_report import CTReportDataset
    from ctlens.models.clip3d.prompts import DEFAULT_PROMPTS, PROMPT_ENSEMBLE
    from ctlens.pipelines.embed import load_clip
    from ctlens.training.clip.evaluation import evaluate_zero_shot

    names = read_split(split, (test_key, "val"))
    model = load_clip(checkpoint)
    test = CTReportDataset(ct, reports, labels, names=names[test_key], patient_column=patient_column)
    val = CTReportDataset(ct, reports, labels, names=names["val"], patient_column=patient_column)
    templates = PROMPT_ENSEMBLE if ensemble else DEFAULT_PROMPTS
    result = evaluate_zero_shot(  # refuses test volumes the checkpoint was trained or validated on
        model, test, val, templates=templates, n_boot=n_boot, out_dir=out, checkpoint=checkpoint
    )
    typer.echo(result["table_markdown"])
    lo, hi = result["mean_auroc_ci"]
    typer.echo(f"mean AUROC {result['mean_auroc']:.3f} [{lo:.3f}, {hi:.3f}] (thresholds from validation)")
    typer.echo(f"peers' protocol (test-set thresholds): weighted F1 {result['peers_protocol']['f1_weighted']:.3f}")
    typer.echo(f"wrote {out}/metrics.json, metrics_table.md, roc_curves.png")


@clip_app.command("zero-shot")
@one_line_errors
def zero_shot_cmd(
    scan: Annotated[Path, typer.Argument(help="DICOM folder/zip, NIfTI, NRRD/MHA")],
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder")],
    finding: Annotated[list[str] | None, typer.Option("--finding", "-f", help="finding name (repeatable)")] = None,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="prompt ensemble")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    series: SeriesOption = None,
) -> None:
    """Probability of each finding in SCAN (model output, not a diagnosis)."""
    from ctlens.cli.series import load_study
    from ctlens.data.ct_report import CT_RATE_FINDINGS
    from ctlens.pipelines.embed import load_clip
    from ctlens.pipelines.zero_shot import zero_shot

    model = load_clip(checkpoint)  # a bad checkpoint fails before the scan is read
    volume = load_study(scan, series)
    probs = zero_shot(
        volume, findings=finding or list(CT_RATE_FINDINGS), model=model, ensemble=ensemble, check_domain=True
    )
    if as_json:
        typer.echo(json.dumps(probs, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{scan.name}: zero-shot findings")
    table.add_column("finding")
    table.add_column("p(present)", justify="right")
    for name, p in probs.items():
        table.add_row(name, f"{p:.3f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``clip`` command group."""
    app.add_typer(clip_app, name="clip")
