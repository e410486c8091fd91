"""The synthetic CLIP benchmark run under the protocol of docs/evaluation.md, with the histogram baseline beside.

Fresh seeds (never used while developing: pass new ones for every report), a training set, and a held-out
set of other patients (names prefixed ``held_``) split patient-wise into validation (thresholds only) and
test (reported). Rows, all on the same test patients and thresholds from the same validation patients:

* ``histogram``: logistic regression on 32-bin grey-level histograms, fitted on the training labels
  (:mod:`ctlens.training.clip.histogram_baseline`);
* ``untrained``: the CLIP before training (chance reference);
* ``clip``: ``ctclip-tiny-lit`` trained as tests/training/test_clip_zero_shot_synthetic.py does (one random
  report sentence per volume and step, no labels), evaluated zero-shot with the split and prompt guards
  on (training names and training reports given).

Usage:
    python benchmarks/clip_protocol.py --kind spatial --train-seed 7101 --held-seed 7102 --out runs/clip_spatial
    python benchmarks/clip_protocol.py --kind planted ... --steps 0      # histogram baseline only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ctlens.data.ct_report import CTReportDataset, patient_split, read_reports
from ctlens.models.clip3d import build_model, load_config
from ctlens.training.clip.evaluation import evaluate_zero_shot
from ctlens.training.clip.histogram_baseline import histogram_baseline
from ctlens.training.clip.synthetic import SYNTHETIC_FINDINGS, write_synthetic_ct_rate
from ctlens.training.clip.synthetic_spatial import SPATIAL_FINDINGS
from ctlens.training.clip.train import ClipTrainConfig, train_clip


def _row(name: str, result: dict) -> dict:
    return {
        "method": name,
        "per_finding_auroc": dict(zip(result["findings"], result["per_finding"]["auroc"], strict=True)),
        "per_finding_ci": dict(
            zip(
                result["findings"],
                zip(result["per_finding_ci"]["auroc"]["low"], result["per_finding_ci"]["auroc"]["high"], strict=True),
                strict=True,
            )
        ),
        "mean_auroc": result["mean_auroc"],
        "mean_auroc_ci": result["mean_auroc_ci"],
        "covers": result["mean_auroc_covers"],
        "macro_f1": result["macro"]["f1"],
        "discarded_draws": result["bootstrap"]["mean_auroc_draws_discarded"],
        "retrieval": result.get("retrieval"),
    }


def _fmt(v: object) -> str:
    return "n/a" if v is None else f"{float(v):.2f}"


def markdown(rows: list[dict], findings: list[str]) -> str:
    """One line per method: per-finding AUROC [95 % CI], mean [CI] and how many findings it covers."""
    head = "| method | " + " | ".join(findings) + " | mean AUROC [95 % CI] | macro F1 |"
    lines = [head, "|---" * (len(findings) + 3) + "|"]
    for r in rows:
        cells = []
        for f in findings:
            low, high = r["per_finding_ci"][f]
            cells.append(f"{_fmt(r['per_finding_auroc'][f])} [{_fmt(low)}, {_fmt(high)}]")
        lo, hi = r["mean_auroc_ci"]
        covers = r["covers"]
        mean = f"{_fmt(r['mean_auroc'])} [{_fmt(lo)}, {_fmt(hi)}] ({covers['covers']} of {covers['of']})"
        lines.append(f"| {r['method']} | " + " | ".join(cells) + f" | {mean} | {_fmt(r['macro_f1'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark (module doc) and write ``results.json`` / ``results.md`` into ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("planted", "spatial"), default="spatial")
    ap.add_argument("--train-seed", type=int, required=True)
    ap.add_argument("--held-seed", type=int, required=True)
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--n-held", type=int, default=160)
    ap.add_argument("--val-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000, help="CLIP training steps (0: histogram baseline only)")
    ap.add_argument("--torch-seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    findings = list(SPATIAL_FINDINGS if args.kind == "spatial" else SYNTHETIC_FINDINGS)
    train_files = write_synthetic_ct_rate(args.out / "train", args.n_train, seed=args.train_seed, kind=args.kind)
    held_files = write_synthetic_ct_rate(
        args.out / "held", args.n_held, seed=args.held_seed, prefix="held_", kind=args.kind
    )
    held = CTReportDataset(held_files["h5"], held_files["reports"], held_files["labels"])
    test_names, val_names = patient_split(held.names, target_val_size=args.val_size, seed=0)
    val = CTReportDataset(held_files["h5"], held_files["reports"], held_files["labels"], names=val_names)
    test = CTReportDataset(held_files["h5"], held_files["reports"], held_files["labels"], names=test_names)
    train = CTReportDataset(train_files["h5"], train_files["reports"], train_files["labels"])
    rows = [_row("histogram (supervised)", histogram_baseline(train, val, test, findings, n_boot=args.n_boot))]
    print(f"histogram baseline done in {time.perf_counter() - started:.0f} s", flush=True)
    guards = {
        "training_names": train.names,
        "training_reports": list(read_reports(train_files["reports"]).values()),
    }
    if args.steps:
        torch.manual_seed(args.torch_seed)
        model = build_model(load_config("ctclip-tiny-lit"))
        untrained = evaluate_zero_shot(model, test, val, findings, n_boot=args.n_boot, **guards)
        rows.append(_row("CLIP untrained", untrained))
        cfg = ClipTrainConfig(
            out_dir=str(args.out / "run"),
            batch_size=32,
            max_steps=args.steps,
            lr=2e-3,
            warmup_steps=50,
            weight_decay=0.05,
            num_workers=0,
            validate_every=args.steps,
            save_every=args.steps,
            log_every=50,
            progress=False,
            sentences=1,
            seed=42 + args.torch_seed,
        )
        train_clip(cfg, train_set=train, val_set=val, model=model)
        trained = evaluate_zero_shot(
            model, test, val, findings, n_boot=args.n_boot, out_dir=args.out / "eval", **guards
        )
        rows.append(_row(f"CLIP {args.steps} steps", trained))
    meta = {
        "kind": args.kind,
        "train_seed": args.train_seed,
        "held_seed": args.held_seed,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "steps": args.steps,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = f"{meta}\n\n" + markdown(rows, findings)
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
