"""``python -m ctlens.compat.ctclip.eval``: seed 003's evaluation flags over
:func:`ctlens.training.clip.evaluation.evaluate_zero_shot` (what ``ctlens clip evaluate`` runs).

Seed flags: ``--model_path`` (a ctlens checkpoint folder, or a file inside it) ``--test_data`` (HDF5)
``--test_labels`` (CT-RATE labels CSV). ctlens additions: ``--val_data`` / ``--val_labels`` (where decision
thresholds come from; ctlens never takes thresholds from the volumes it reports on, so without them
``--val_fraction`` of the test patients, whole patients, set the thresholds and are left out of the reported
metrics, and the output says so), ``--out_dir``, ``--n_boot``, ``--ensemble``.

Example:
    >>> parser().parse_args(["--model_path", "m", "--test_data", "t.h5", "--test_labels", "l.csv"]).n_boot
    1000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ctlens.compat.ctclip.args import run_script

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The seed's flags (and ctlens's additions)."""
    p = argparse.ArgumentParser(prog="eval.py", description="Zero-shot evaluation of a 3D CLIP (ctlens)")
    p.add_argument("--model_path", required=True, type=Path, help="checkpoint folder (or a file in it)")
    p.add_argument("--test_data", required=True, type=Path, help="HDF5 volumes")
    p.add_argument("--test_labels", required=True, type=Path, help="labels CSV")
    p.add_argument("--val_data", type=Path, default=None, help="HDF5 of the validation volumes (thresholds)")
    p.add_argument("--val_labels", type=Path, default=None, help="labels CSV of the validation volumes")
    p.add_argument("--val_fraction", type=float, default=0.2, help="test patients for thresholds (no --val_data)")
    p.add_argument("--out_dir", type=Path, default=Path("clip_eval"))
    p.add_argument("--n_boot", type=int, default=1000)
    p.add_argument("--ensemble", action="store_true", help="prompt ensemble")
    return p


def _main(argv: Sequence[str] | None) -> int:
    from ctlens.data.ct_report import CTReportDataset
    from ctlens.models.clip3d.prompts import DEFAULT_PROMPTS, PROMPT_ENSEMBLE
    from ctlens.pipelines.embed import load_clip
    from ctlens.training.clip.evaluation import evaluate_zero_shot

    a = parser().parse_args(argv)
    model = load_clip(a.model_path)
    test = CTReportDataset(a.test_data, None, a.test_labels)
    if (a.val_data is None) != (a.val_labels is None):
        raise ValueError("give both --val_data and --val_labels, or neither")
    if a.val_data is not None:
        val = CTReportDataset(a.val_data, None, a.val_labels)
    else:
        from ctlens.data.ct_report import patient_split

        rest, held = patient_split(test.names, max(1, round(a.val_fraction * len(test))), seed=0)
        test = CTReportDataset(a.test_data, None, a.test_labels, names=rest)
        val = CTReportDataset(a.test_data, None, a.test_labels, names=held)
    templates = PROMPT_ENSEMBLE if a.ensemble else DEFAULT_PROMPTS
    result = evaluate_zero_shot(  # refuses test volumes the checkpoint was trained or validated on
        model, test, val, templates=templates, n_boot=a.n_boot, out_dir=a.out_dir, checkpoint=a.model_path
    )
    print(result["table_markdown"])
    lo, hi = result["mean_auroc_ci"]
    where = "--val_data" if a.val_data is not None else f"{len(val)} held-out test volumes (no --val_data given)"
    print(f"mean AUROC {result['mean_auroc']:.3f} [{lo:.3f}, {hi:.3f}]; thresholds from {where}")
    print(f"wrote {a.out_dir}/metrics.json")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; 0 when the evaluation was written."""
    return run_script(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
