"""Zero-shot evaluation of a 3D CLIP on labelled CT, with the protocol done right and the peers' beside it.

:func:`evaluate_zero_shot`:

1. embeds the validation and test volumes; finding probabilities from the prompt pair
   "{finding} is present." / "{finding} is not present." (or a prompt ensemble), softmaxed;
2. **ours**: per-finding and mean AUROC on test with patient-level bootstrap 95 % CIs (``n_boot`` real
   resamples of patients); thresholds picked on the **validation** set (Youden's J) and applied unchanged
   to test -> macro F1, accuracy, precision, recall, specificity, with CIs for F1;
3. retrieval recall@k (volume <-> report) on test;
4. **peers' protocol** (labelled as such): thresholds picked on the test set, support-weighted F1, for
   comparison with published CT-CLIP-style numbers;
5. writes ``metrics.json``, ``metrics_table.md`` / ``.csv`` and ``roc_curves.png`` into ``out_dir``.

Example:
    >>> sorted(summary_keys())
    ['mean_auroc', 'mean_auroc_ci', 'peers_protocol', 'retrieval', 'thresholds_from']
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctlens.models.clip3d.prompts import DEFAULT_PROMPTS, finding_probabilities, prompt_embeddings
from ctlens.training.clip.metrics import (
    auroc,
    binary_metrics,
    bootstrap_ci,
    metrics_table,
    peer_protocol,
    recall_at_k,
    roc_curve_png,
    youden_thresholds,
)

__all__ = ["embed_dataset", "evaluate_scores", "evaluate_zero_shot", "summary_keys", "zero_shot_scores"]


def summary_keys() -> tuple[str, ...]:
    """Top-level summary entries of :func:`evaluate_zero_shot`'s result (besides per-finding tables)."""
    return ("mean_auroc", "mean_auroc_ci", "thresholds_from", "peers_protocol", "retrieval")


@torch.no_grad()
def embed_dataset(model: torch.nn.Module, dataset: Any, batch_size: int = 8) -> dict[str, Any]:
    """``{"image", "text" (normalised embeddings), "labels" (or None), "names"}`` over a CTReportDataset."""
    from ctlens.data.ct_report import collate_ct_report

    model.eval()
    images, texts, labels, names = [], [], [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate_ct_report([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
        images.append(model.encode_volume(batch["volume"].to(model.device)).float().cpu())
        texts.append(model.encode_text(batch["text"]).float().cpu())
        if batch["labels"] is not None:
            labels.append(batch["labels"])
        names += batch["name"]
    return {
        "image": torch.cat(images).numpy(),
        "text": torch.cat(texts).numpy(),
        "labels": torch.cat(labels).numpy() if labels else None,
        "names": names,
    }


@torch.no_grad()
def zero_shot_scores(
    model: torch.nn.Module, image_embeddings: np.ndarray, findings: Sequence[str], templates=DEFAULT_PROMPTS
) -> np.ndarray:
    """``[n, len(findings)]`` probabilities from embedded volumes."""
    prompts = prompt_embeddings(model, findings, templates)
    emb = torch.as_tensor(image_embeddings, device=model.device)
    return finding_probabilities(model, emb, findings, prompts=prompts).float().cpu().numpy()


def evaluate_scores(
    findings: Sequence[str],
    val_labels: np.ndarray,
    val_scores: np.ndarray,
    test_labels: np.ndarray,
    test_scores: np.ndarray,
    test_patients: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """All metrics from scores alone (steps 2 and 4 of the module doc); thresholds come from validation only.

    Example:
        >>> rng = np.random.default_rng(0); yv = rng.integers(0, 2, (40, 2)); yt = rng.integers(0, 2, (40, 2))
        >>> r = evaluate_scores(["a", "b"], yv, yv + rng.normal(0, .5, yv.shape), yt, yt + rng.normal(0, .5, yt.shape),
        ...                     [str(i) for i in range(40)], n_boot=50)
        >>> r["thresholds_from"], 0.5 < r["mean_auroc"] <= 1.0
        ('validation', True)
    """
    thresholds = youden_thresholds(val_labels, val_scores)
    per_auc = auroc(test_labels, test_scores)
    ci_auc = bootstrap_ci(auroc, test_labels, test_scores, test_patients, n_boot=n_boot, seed=seed)
    with np.errstate(all="ignore"):
        mean_draws = np.nanmean(ci_auc["draws"], axis=1)
    binary = binary_metrics(test_labels, test_scores, thresholds)

    def f1_at_val_thresholds(y: np.ndarray, s: np.ndarray) -> np.ndarray:
        return binary_metrics(y, s, thresholds)["f1"]

    ci_f1 = bootstrap_ci(f1_at_val_thresholds, test_labels, test_scores, test_patients, n_boot=n_boot, seed=seed + 1)
    mean_ci = [float(np.nanquantile(mean_draws, 0.025)), float(np.nanquantile(mean_draws, 0.975))]
    rows = {"auroc": per_auc, **binary}
    ci = {"auroc": {**ci_auc, "mean_low": mean_ci[0], "mean_high": mean_ci[1]}, "f1": ci_f1}
    peers = peer_protocol(test_labels, test_scores)
    return {
        "findings": list(findings),
        "mean_auroc": float(np.nanmean(per_auc)),
        "mean_auroc_ci": mean_ci,
        "n_boot": int(n_boot),
        "thresholds_from": "validation",
        "thresholds": _jsonable(thresholds),
        "per_finding": {name: _jsonable(values) for name, values in rows.items()},
        "per_finding_ci": {name: {"low": _jsonable(c["low"]), "high": _jsonable(c["high"])} for name, c in ci.items()},
        "macro": {name: float(np.nanmean(values)) for name, values in rows.items()},
        "peers_protocol": {
            "description": "thresholds picked on the TEST set (Youden), support-weighted F1 -- as CT-CLIP's script",
            **{k: _jsonable(v) for k, v in peers.items()},
        },
        "table_markdown": metrics_table(findings, rows, ci),
        "_rows": rows,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [None if not np.isfinite(v) else float(v) for v in value.tolist()]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def evaluate_zero_shot(
    model: torch.nn.Module,
    test_set: Any,
    val_set: Any,
    findings: Sequence[str] | None = None,
    templates: Sequence[tuple[str, str]] = DEFAULT_PROMPTS,
    n_boot: int = 1000,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """The whole evaluation (module doc); findings default to the test labels' columns with both classes."""
    from ctlens.data.ct_report import patient_id

    test = embed_dataset(model, test_set, batch_size)
    val = embed_dataset(model, val_set, batch_size)
    if test["labels"] is None or val["labels"] is None:
        raise ValueError("evaluation needs labels (labels CSV) for the validation and the test volumes")
    columns = list(test_set.findings)
    if findings is None:
        lab = test["labels"]
        findings = [
            f
            for j, f in enumerate(columns)
            if np.isfinite(lab[:, j]).any() and 0 < np.nansum(lab[:, j]) < np.isfinite(lab[:, j]).sum()
        ]
    cols = [columns.index(f) for f in findings]
    test_scores = zero_shot_scores(model, test["image"], findings, templates)
    val_scores = zero_shot_scores(model, val["image"], findings, templates)
    result = evaluate_scores(
        findings,
        val["labels"][:, cols],
        val_scores,
        test["labels"][:, cols],
        test_scores,
        [patient_id(n) for n in test["names"]],
        n_boot=n_boot,
        seed=seed,
    )
    result["retrieval"] = recall_at_k(test["image"], test["text"], ks=(1, 5, 10))
    result["templates"] = [list(t) for t in templates]
    result["n_test"], result["n_val"] = len(test["names"]), len(val["names"])
    rows = result.pop("_rows")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=1))
        (out / "metrics_table.md").write_text(
            result["table_markdown"]
            + f"\n\nThresholds from the validation set; 95 % CIs: patient-level bootstrap, {n_boot} draws.\n"
            + f"\nPeers' protocol (test-set thresholds, weighted F1): F1_w "
            f"{result['peers_protocol']['f1_weighted']:.3f}, accuracy {result['peers_protocol']['accuracy']:.3f}\n"
        )
        with open(out / "metrics_table.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["finding", *rows])
            for j, f in enumerate(findings):
                writer.writerow([f, *[f"{rows[m][j]:.4f}" for m in rows]])
        roc_curve_png(out / "roc_curves.png", test["labels"][:, cols], test_scores, findings)
    return result
