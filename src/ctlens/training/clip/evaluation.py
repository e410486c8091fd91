"""Zero-shot evaluation of a 3D CLIP on labelled CT, with the protocol done right and the peers' beside it.

:func:`evaluate_zero_shot`:

0. **guards** (docs/evaluation.md): test, threshold-validation and the checkpoint's recorded training and
   validation volumes share no patient (:mod:`ctlens.training.clip.protocol`; refused otherwise), and no
   zero-shot prompt occurs in the training reports (:func:`~ctlens.models.clip3d.prompts.prompt_leaks`;
   refused otherwise); what was checked is written into the result (``protocol``);
1. embeds the validation and test volumes; finding probabilities from the prompt pair
   "{finding} is present." / "{finding} is not present." (or a prompt ensemble), softmaxed;
2. **ours**: per-finding and mean AUROC on test with patient-level bootstrap 95 % CIs (``n_boot`` real
   resamples of patients; discarded draws counted; every mean lists the findings it covers and the skipped
   ones with the reason); thresholds picked on the **validation** set (Youden's J) and applied unchanged
   to test -> macro F1, accuracy, precision, recall, specificity, with CIs for F1;
3. retrieval recall@k (volume <-> report) on test, ties at their expected rank;
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
    bootstrap_mean_ci,
    macro_mean,
    metrics_table,
    peer_protocol,
    recall_at_k,
    roc_curve_png,
    youden_thresholds,
)

__all__ = [
    "embed_dataset",
    "evaluate_scores",
    "evaluate_zero_shot",
    "skip_reasons",
    "summary_keys",
    "write_evaluation",
    "zero_shot_scores",
]


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


def _why_undefined(labels: np.ndarray, scores: np.ndarray, side: str) -> str | None:
    keep = np.isfinite(labels)
    n1 = int((labels[keep] > 0.5).sum())
    n0 = int(keep.sum()) - n1
    if not keep.any():
        return f"no {side} labels"
    if n1 == 0 or n0 == 0:
        return f"{side} has no {'positives' if n1 == 0 else 'negatives'}"
    if not np.isfinite(scores[keep]).all():
        return f"non-finite {side} scores"
    return None


def skip_reasons(
    findings: Sequence[str],
    val_labels: np.ndarray,
    val_scores: np.ndarray,
    test_labels: np.ndarray,
    test_scores: np.ndarray,
) -> tuple[dict[str, str], dict[str, str]]:
    """``(auroc reasons, threshold-metric reasons)``: why a finding is left out of each kind of mean.

    AUROC needs both classes and finite scores on test; F1 and the other threshold metrics also need them
    on validation (where the threshold comes from).

    Example:
        >>> yv = np.array([[0, 1], [1, 1]]); yt = np.array([[0, 0], [1, 1]]); s = np.array([[0.2, 0.3], [0.7, 0.9]])
        >>> skip_reasons(["a", "b"], yv, s, yt, s)
        ({}, {'b': 'validation has no negatives (no threshold)'})
    """
    by_auc: dict[str, str] = {}
    by_thr: dict[str, str] = {}
    yv, sv = np.asarray(val_labels, np.float64), np.asarray(val_scores, np.float64)
    yt, st = np.asarray(test_labels, np.float64), np.asarray(test_scores, np.float64)
    for j, name in enumerate(findings):
        test_reason = _why_undefined(yt[:, j], st[:, j], "test")
        val_reason = _why_undefined(yv[:, j], sv[:, j], "validation")
        if test_reason:
            by_auc[name] = by_thr[name] = test_reason
        elif val_reason:
            by_thr[name] = f"{val_reason} (no threshold)"
    return by_auc, by_thr


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

    Every mean says what it covers (``mean_auroc_covers``, ``macro_covers``: how many findings, which were
    skipped and why); the mean-AUROC CI uses a fixed finding set (those the point estimate covers) and
    counts the bootstrap draws it had to discard (``bootstrap``).

    Example:
        >>> rng = np.random.default_rng(0); yv = rng.integers(0, 2, (40, 2)); yt = rng.integers(0, 2, (40, 2))
        >>> r = evaluate_scores(["a", "b"], yv, yv + rng.normal(0, .5, yv.shape), yt, yt + rng.normal(0, .5, yt.shape),
        ...                     [str(i) for i in range(40)], n_boot=50)
        >>> r["thresholds_from"], 0.5 < r["mean_auroc"] <= 1.0, r["mean_auroc_covers"]["covers"]
        ('validation', True, 2)
    """
    findings = list(findings)
    by_auc, by_thr = skip_reasons(findings, val_labels, val_scores, test_labels, test_scores)
    thresholds = youden_thresholds(val_labels, val_scores)
    per_auc = auroc(test_labels, test_scores)
    ci_auc = bootstrap_ci(auroc, test_labels, test_scores, test_patients, n_boot=n_boot, seed=seed)
    auc_macro = macro_mean(findings, per_auc, by_auc)
    covered = [j for j, f in enumerate(findings) if f not in auc_macro["skipped"]]
    mean_ci = bootstrap_mean_ci(ci_auc["draws"], covered)
    binary = binary_metrics(test_labels, test_scores, thresholds)

    def f1_at_val_thresholds(y: np.ndarray, s: np.ndarray) -> np.ndarray:
        return binary_metrics(y, s, thresholds)["f1"]

    ci_f1 = bootstrap_ci(f1_at_val_thresholds, test_labels, test_scores, test_patients, n_boot=n_boot, seed=seed + 1)
    rows = {"auroc": per_auc, **binary}
    ci = {"auroc": {**ci_auc, "mean_low": mean_ci["low"], "mean_high": mean_ci["high"]}, "f1": ci_f1}
    peers = peer_protocol(test_labels, test_scores)
    macro = {name: macro_mean(findings, values, by_auc if name == "auroc" else by_thr) for name, values in rows.items()}
    return {
        "findings": findings,
        "mean_auroc": auc_macro["mean"],
        "mean_auroc_ci": [mean_ci["low"], mean_ci["high"]],
        "mean_auroc_covers": auc_macro,
        "n_boot": int(n_boot),
        "bootstrap": {
            "n_boot": int(n_boot),
            "unit": "patient",
            "patients": len(set(map(str, test_patients))),
            "mean_auroc_draws_used": mean_ci["used"],
            "mean_auroc_draws_discarded": mean_ci["discarded"],
            "discarded_per_finding": {
                name: dict(zip(findings, c["discarded"].tolist(), strict=True)) for name, c in ci.items()
            },
        },
        "thresholds_from": "validation",
        "thresholds": _jsonable(thresholds),
        "per_finding": {name: _jsonable(values) for name, values in rows.items()},
        "per_finding_ci": {name: {"low": _jsonable(c["low"]), "high": _jsonable(c["high"])} for name, c in ci.items()},
        "macro": {name: m["mean"] for name, m in macro.items()},
        "macro_covers": {name: {k: v for k, v in m.items() if k != "mean"} for name, m in macro.items()},
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


def _protocol_checks(
    test_set: Any,
    val_set: Any,
    findings: Sequence[str],
    templates: Sequence[tuple[str, str]],
    checkpoint: str | os.PathLike[str] | None,
    training_names: Sequence[str] | None,
    training_val_names: Sequence[str] | None,
    training_reports: Sequence[str] | None,
) -> dict[str, Any]:
    from ctlens.core.errors import CTLensError
    from ctlens.data.ct_report import read_reports, volume_key
    from ctlens.models.clip3d.prompts import prompt_leaks
    from ctlens.training.clip.protocol import check_disjoint, training_record

    record = training_record(checkpoint) if checkpoint is not None and training_names is None else None
    train = list(training_names) if training_names is not None else (record.train if record else [])
    train_val = list(training_val_names or []) if training_names is not None else (record.val if record else [])
    source = "given" if training_names is not None else (record.source if record else "not recorded")
    patients = {}
    for ds in (test_set, val_set):
        patients.update(getattr(ds, "patient_map", None) or {})
    split = check_disjoint(
        test=test_set.names, val=val_set.names, train=train, train_val=train_val, patients=patients or None
    )
    texts = list(training_reports) if training_reports is not None else None
    if texts is None and record is not None and record.reports and Path(record.reports).is_file():
        wanted = {volume_key(n) for n in record.train}
        texts = [t for k, t in read_reports(record.reports).items() if k in wanted]
    leaks = prompt_leaks(templates, findings, texts) if texts is not None else []
    if leaks:
        first = leaks[0]
        raise CTLensError(
            f"zero-shot prompt {first['prompt']!r} is in {first['reports']} training report(s) "
            f"({first['kind']}, e.g. {first['example']!r}): the evaluation would not be zero-shot",
            hint="use prompts that the training reports never contain",
        )
    return {
        "split_check": {**split, "training_names_from": source},
        "prompt_check": {"training_reports_checked": None if texts is None else len(texts), "leaks": []},
    }


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
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    training_names: Sequence[str] | None = None,
    training_val_names: Sequence[str] | None = None,
    training_reports: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The whole evaluation (module doc).

    Findings default to the test label columns that hold any label (a column with one class is kept and
    reported as skipped, with the reason). The training volumes come from ``training_names`` (and
    ``training_val_names``) or from what ``checkpoint`` records; the training report texts for the prompt
    check from ``training_reports`` or the recorded reports CSV. Overlap or a prompt leak is an error.
    """
    test_names = list(test_set.names)
    columns = list(test_set.findings)
    if findings is None:
        findings = [f for f in columns if test_set.items and _has_labels(test_set, columns.index(f))]
    protocol = _protocol_checks(
        test_set, val_set, findings, templates, checkpoint, training_names, training_val_names, training_reports
    )
    test = embed_dataset(model, test_set, batch_size)
    val = embed_dataset(model, val_set, batch_size)
    if test["labels"] is None or val["labels"] is None:
        raise ValueError("evaluation needs labels (labels CSV) for the validation and the test volumes")
    cols = [columns.index(f) for f in findings]
    test_scores = zero_shot_scores(model, test["image"], findings, templates)
    val_scores = zero_shot_scores(model, val["image"], findings, templates)
    patients = test_set.patients if hasattr(test_set, "patients") else test_names
    result = evaluate_scores(
        findings,
        val["labels"][:, cols],
        val_scores,
        test["labels"][:, cols],
        test_scores,
        patients,
        n_boot=n_boot,
        seed=seed,
    )
    result["retrieval"] = recall_at_k(test["image"], test["text"], ks=(1, 5, 10))
    result["templates"] = [list(t) for t in templates]
    result["n_test"], result["n_val"] = len(test["names"]), len(val["names"])
    result["protocol"] = protocol
    rows = result.pop("_rows")
    if out_dir is not None:
        write_evaluation(result, rows, out_dir, test["labels"][:, cols], test_scores)
    return result


def _has_labels(dataset: Any, column: int) -> bool:
    return any(lab is not None and np.isfinite(lab[column]) for _, _, _, lab in dataset.items)


def write_evaluation(
    result: dict[str, Any],
    rows: dict[str, np.ndarray],
    out_dir: str | os.PathLike[str],
    test_labels: np.ndarray | None = None,
    test_scores: np.ndarray | None = None,
) -> Path:
    """``metrics.json``, ``metrics_table.md`` / ``.csv`` (and ``roc_curves.png`` given labels and scores)."""
    findings = result["findings"]
    n_boot = result["n_boot"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    covers = result["mean_auroc_covers"]
    skipped = "; ".join(f"{k}: {v}" for k, v in covers["skipped"].items()) or "none"
    boot = result["bootstrap"]
    (out / "metrics_table.md").write_text(
        result["table_markdown"]
        + f"\n\nThresholds from the validation set; 95 % CIs: patient-level bootstrap, {n_boot} draws "
        f"({boot['mean_auroc_draws_discarded']} discarded for the mean AUROC).\n"
        + f"Mean AUROC covers {covers['covers']} of {covers['of']} findings; skipped: {skipped}.\n"
        + f"\nPeers' protocol (test-set thresholds, weighted F1): F1_w "
        f"{result['peers_protocol']['f1_weighted']:.3f}, accuracy {result['peers_protocol']['accuracy']:.3f}\n"
    )
    with open(out / "metrics_table.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["finding", *rows])
        for j, f in enumerate(findings):
            writer.writerow([f, *[f"{rows[m][j]:.4f}" for m in rows]])
    if test_labels is not None and test_scores is not None:
        roc_curve_png(out / "roc_curves.png", test_labels, test_scores, findings)
    return out
