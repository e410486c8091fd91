"""Evaluation metrics for zero-shot findings, done right, and the peers' protocol for comparison.

* AUROC per finding (rank / Mann-Whitney form, ties averaged; equal to scikit-learn's ``roc_auc_score``);
  a finding whose labels hold one class, or whose scores are not all finite, is NaN;
* thresholds chosen **on the validation set** (Youden's J = max(TPR - FPR)) and applied to the test set;
  then per-finding and macro F1, accuracy, precision, recall, specificity;
* every macro mean says what it covers (:func:`macro_mean`: how many findings, which were skipped and why);
* patient-level bootstrap: ``n_boot`` draws of patients with replacement (all volumes of a drawn patient
  come along), the statistic recomputed on every draw, percentile 95 % CI (Efron & Tibshirani 1993); draws
  where a finding is undefined are counted per finding (``discarded``), and the CI of a mean uses only draws
  where every finding of its fixed set is defined (:func:`bootstrap_mean_ci`);
* retrieval recall@k in both directions, ties counted at their expected rank (a collapsed model whose
  embeddings are all equal gets R@k = k / n, chance, not 1);
* the **peers' protocol** (CT-CLIP's released evaluation): thresholds picked on the test set itself and
  support-weighted F1 -- reported separately and labelled, never mixed with the above.

Example:
    >>> import numpy as np
    >>> y = np.array([[0], [0], [1], [1]]); s = np.array([[0.1], [0.4], [0.35], [0.8]])
    >>> float(auroc(y, s)[0])
    0.75
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.io.files import atomic_output

__all__ = [
    "auroc",
    "binary_metrics",
    "bootstrap_ci",
    "bootstrap_mean_ci",
    "macro_mean",
    "metrics_table",
    "peer_protocol",
    "recall_at_k",
    "roc_curve_png",
    "youden_thresholds",
]


def _as2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-column AUROC of ``scores`` for 0/1 ``labels`` ``[n, k]``; NaN labels ignored; one class, NaN scores -> NaN.

    Mann-Whitney form: ``(sum of positive ranks - n1 (n1 + 1) / 2) / (n1 n0)`` with average ranks for ties.

    Example:
        >>> auroc(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.2, 0.1])).round(3).tolist()
        [0.875]
    """
    from scipy.stats import rankdata

    y, s = _as2d(labels), _as2d(scores)
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        keep = ~np.isnan(y[:, j])
        yj, sj = y[keep, j] > 0.5, s[keep, j]
        n1 = int(yj.sum())
        n0 = int(yj.size - n1)
        if n1 == 0 or n0 == 0 or not np.isfinite(sj).all():
            continue
        ranks = rankdata(sj)
        out[j] = (ranks[yj].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return out


def youden_thresholds(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-finding threshold maximising TPR - FPR (Youden's J) on the given (validation) set; NaN if undefined.

    Example:
        >>> youden_thresholds(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.6, 0.9])).tolist()
        [0.6]
    """
    from sklearn.metrics import roc_curve

    y, s = _as2d(labels), _as2d(scores)
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        keep = ~np.isnan(y[:, j])
        yj = y[keep, j] > 0.5
        if yj.all() or not yj.any() or not np.isfinite(s[keep, j]).all():
            continue
        fpr, tpr, thr = roc_curve(yj, s[keep, j])
        thr = np.where(np.isinf(thr), np.nextafter(s[keep, j].max(), np.inf), thr)
        out[j] = float(thr[int(np.argmax(tpr - fpr))])
    return out


def binary_metrics(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Per-finding ``f1, accuracy, precision, recall, specificity`` at ``scores >= thresholds`` (NaN scores: NaN).

    Example:
        >>> m = binary_metrics(np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.4, 0.6]), np.array([0.5]))
        >>> m["accuracy"].tolist(), m["f1"].tolist()
        ([0.5], [0.5])
    """
    y, s = _as2d(labels), _as2d(scores)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    names = ("f1", "accuracy", "precision", "recall", "specificity")
    out = {name: np.full(y.shape[1], np.nan) for name in names}
    for j in range(y.shape[1]):
        keep = ~np.isnan(y[:, j])
        if not keep.any() or np.isnan(thr[j]) or not np.isfinite(s[keep, j]).all():
            continue
        truth, pred = y[keep, j] > 0.5, s[keep, j] >= thr[j]
        tp, fp = int((truth & pred).sum()), int((~truth & pred).sum())
        fn, tn = int((truth & ~pred).sum()), int((~truth & ~pred).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else np.nan
        out["precision"][j] = precision
        out["recall"][j] = recall
        out["specificity"][j] = tn / (tn + fp) if tn + fp else np.nan
        out["accuracy"][j] = (tp + tn) / truth.size
        out["f1"][j] = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return out


def bootstrap_ci(
    statistic: Any,
    labels: np.ndarray,
    scores: np.ndarray,
    patients: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, np.ndarray]:
    """Patient-level bootstrap of ``statistic(labels, scores) -> [k]``: ``{"estimate", "low", "high", "draws"}``.

    Every draw samples ``n_patients`` patients with replacement (``numpy.random.default_rng(seed)``) and
    takes all volumes of each drawn patient; the CI is the percentile interval of the ``n_boot`` draws.
    Draws where the statistic is undefined for a finding (e.g. one class drawn) are left out of that
    finding's interval and counted in ``"discarded"`` (per finding), never dropped silently.

    Example:
        >>> rng = np.random.default_rng(0); y = rng.integers(0, 2, (60, 1)); s = y + rng.normal(0, 1, (60, 1))
        >>> ci = bootstrap_ci(auroc, y, s, [str(i) for i in range(60)], n_boot=200)
        >>> bool(ci["low"][0] < ci["estimate"][0] < ci["high"][0]), ci["draws"].shape, ci["discarded"].tolist()
        (True, (200, 1), [0])
    """
    y, s = _as2d(labels), _as2d(scores)
    ids = np.asarray([str(p) for p in patients])
    unique, inverse = np.unique(ids, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(unique.size)]
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, y.shape[1]))
    for b in range(n_boot):
        chosen = rng.integers(0, unique.size, unique.size)
        rows = np.concatenate([members[c] for c in chosen])
        draws[b] = statistic(y[rows], s[rows])
    alpha = (1.0 - level) / 2.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a finding undefined in every draw: NaN, counted below
        low = np.nanquantile(draws, alpha, axis=0) if np.isfinite(draws).any() else np.full(y.shape[1], np.nan)
        high = np.nanquantile(draws, 1.0 - alpha, axis=0) if np.isfinite(draws).any() else np.full(y.shape[1], np.nan)
    return {
        "estimate": np.asarray(statistic(y, s), dtype=np.float64),
        "low": low,
        "high": high,
        "draws": draws,
        "discarded": (~np.isfinite(draws)).sum(axis=0).astype(np.int64),
    }


def bootstrap_mean_ci(draws: np.ndarray, covered: Sequence[int], level: float = 0.95) -> dict[str, Any]:
    """Percentile CI of the mean over the fixed finding columns ``covered`` from bootstrap ``draws`` ``[n, k]``.

    A draw where any covered finding is undefined is discarded (counted), so every draw's mean averages the
    same findings; ``{"low", "high", "used", "discarded"}`` (NaN bounds when no draw is usable).

    Example:
        >>> d = np.array([[0.6, 0.8], [0.7, np.nan], [0.8, 0.9], [0.5, 0.7]])
        >>> r = bootstrap_mean_ci(d, [0, 1]); r["used"], r["discarded"]
        (3, 1)
    """
    cols = list(covered)
    sub = np.asarray(draws, np.float64)[:, cols] if cols else np.empty((len(draws), 0))
    ok = np.isfinite(sub).all(axis=1) if cols else np.zeros(len(sub), bool)
    alpha = (1.0 - level) / 2.0
    means = sub[ok].mean(axis=1) if ok.any() else np.empty(0)
    low = float(np.quantile(means, alpha)) if means.size else float("nan")
    high = float(np.quantile(means, 1.0 - alpha)) if means.size else float("nan")
    return {"low": low, "high": high, "used": int(ok.sum()), "discarded": int((~ok).sum())}


def macro_mean(findings: Sequence[str], values: np.ndarray, reasons: dict[str, str] | None = None) -> dict[str, Any]:
    """The mean over the findings whose value is finite, with what it covers and why the others are out.

    ``reasons`` (finding -> why) names findings to skip even where a value exists (e.g. F1 of a finding
    with no positives in test, so every metric's mean covers the same findings) and explains skipped ones;
    unexplained ones read "undefined".

    Example:
        >>> macro_mean(["a", "b", "c"], np.array([0.8, np.nan, 0.6]), {"b": "test has one class"})
        {'mean': 0.7, 'covers': 2, 'of': 3, 'skipped': {'b': 'test has one class'}}
    """
    v = np.asarray(values, np.float64).reshape(-1)
    ok = np.isfinite(v) & np.array([f not in (reasons or {}) for f in findings], bool)
    skipped = {f: (reasons or {}).get(f, "undefined") for f, good in zip(findings, ok, strict=True) if not good}
    mean = round(float(v[ok].mean()), 12) if ok.any() else float("nan")
    return {"mean": mean, "covers": int(ok.sum()), "of": int(v.size), "skipped": skipped}


def peer_protocol(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """The peers' (CT-CLIP script) numbers: Youden thresholds **picked on this same set**, weighted F1.

    Reported only to compare with published numbers; optimistic by construction.

    Example:
        >>> r = peer_protocol(np.array([[0], [1], [1], [0]]), np.array([[0.2], [0.7], [0.4], [0.6]]))
        >>> sorted(r)
        ['accuracy', 'f1_weighted', 'precision_weighted', 'recall_weighted', 'thresholds']
    """
    from sklearn.metrics import f1_score, precision_score, recall_score

    y, s = _as2d(labels), _as2d(scores)
    thr = youden_thresholds(y, s)
    cols = [j for j in range(y.shape[1]) if not np.isnan(thr[j]) and not np.isnan(y[:, j]).any()]
    truth = (y[:, cols] > 0.5).astype(int)
    pred = (s[:, cols] >= thr[cols]).astype(int)
    kwargs = {"average": "weighted", "zero_division": 0}
    return {
        "thresholds": thr,
        "f1_weighted": float(f1_score(truth, pred, **kwargs)) if cols else float("nan"),
        "precision_weighted": float(precision_score(truth, pred, **kwargs)) if cols else float("nan"),
        "recall_weighted": float(recall_score(truth, pred, **kwargs)) if cols else float("nan"),
        "accuracy": float((truth == pred).mean()) if cols else float("nan"),
    }


def recall_at_k(
    image_emb: np.ndarray, text_emb: np.ndarray, ks: Sequence[int] = (1, 5, 10), tie_tol: float = 1e-6
) -> dict[str, float]:
    """Retrieval recall@k (pair i is image i with text i), image->text and text->image; ties never flatter.

    A candidate scoring within ``tie_tol`` of the true one is a tie; the true item is taken to sit at a
    uniformly random place among its ties, so each query counts ``P(rank < k)`` = ``clip((k - above) /
    (tied + 1), 0, 1)``, where ``above`` candidates score higher and ``tied`` others tie (the expected
    recall under random tie order). A collapsed model (all embeddings equal) gets R@k = k / n.

    Example:
        >>> e = np.eye(4)
        >>> recall_at_k(e, e, ks=(1,))
        {'image_to_text_R@1': 1.0, 'text_to_image_R@1': 1.0}
        >>> recall_at_k(np.ones((4, 2)), np.ones((4, 2)), ks=(1, 2))["image_to_text_R@2"]
        0.5
    """
    sim = np.asarray(image_emb, np.float64) @ np.asarray(text_emb, np.float64).T
    n = sim.shape[0]
    diag = sim[np.arange(n), np.arange(n)]
    tol = tie_tol * np.maximum(1.0, np.abs(diag))

    def hits(scores: np.ndarray, true: np.ndarray, k: int) -> float:  # scores [query, candidate]
        above = (scores > true[:, None] + tol[:, None]).sum(axis=1)
        tied = (np.abs(scores - true[:, None]) <= tol[:, None]).sum(axis=1) - 1  # others tied with the truth
        return float(np.clip((k - above) / (tied + 1.0), 0.0, 1.0).mean())

    out = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = hits(sim, diag, k)
    for k in ks:
        out[f"text_to_image_R@{k}"] = hits(sim.T, diag, k)
    return out


def metrics_table(findings: Sequence[str], rows: dict[str, np.ndarray], ci: dict[str, dict[str, np.ndarray]]) -> str:
    """A Markdown table: one row per finding and a mean row; ``metric [low, high]`` where a CI exists.

    A mean over fewer than all findings says so: ``0.812 (4 of 5)``.

    Example:
        >>> print(metrics_table(["a", "b"], {"auroc": np.array([0.9, np.nan])}, {}).splitlines()[-1])
        | **mean** | 0.900 (1 of 2) |
    """
    metrics = list(rows)
    lines = ["| finding | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]

    def cell(name: str, j: int | None) -> str:
        values = np.asarray(rows[name], np.float64)
        macro = macro_mean(findings, values)
        v = macro["mean"] if j is None else float(values[j])
        text = "n/a" if np.isnan(v) else f"{v:.3f}"
        if name in ci and j is not None and not np.isnan(ci[name]["low"][j]):
            text += f" [{ci[name]['low'][j]:.3f}, {ci[name]['high'][j]:.3f}]"
        if name in ci and j is None and "mean_low" in ci[name] and np.isfinite(ci[name]["mean_low"]):
            text += f" [{ci[name]['mean_low']:.3f}, {ci[name]['mean_high']:.3f}]"
        if j is None and macro["covers"] < macro["of"]:
            text += f" ({macro['covers']} of {macro['of']})"
        return text

    for j, finding in enumerate(findings):
        lines.append(f"| {finding} | " + " | ".join(cell(m, j) for m in metrics) + " |")
    lines.append("| **mean** | " + " | ".join(cell(m, None) for m in metrics) + " |")
    return "\n".join(lines)


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def roc_curve_png(
    path: str | os.PathLike[str], labels: np.ndarray, scores: np.ndarray, findings: Sequence[str], size: int = 480
) -> Path:
    """Draw the ROC curves (one colour per finding, AUROC in the legend) as a PNG with Pillow.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "roc.png"
        >>> p = roc_curve_png(out, np.array([0, 1, 1]), np.array([0.1, 0.8, 0.4]), ["x"])
        >>> p.stat().st_size > 1000
        True
    """
    from PIL import Image, ImageDraw
    from sklearn.metrics import roc_curve

    y, s = _as2d(labels), _as2d(scores)
    aucs = auroc(y, s)
    margin, legend_h = 50, 16 * min(len(findings), 20) + 10
    img = Image.new("RGB", (size, size + legend_h), "white")
    draw = ImageDraw.Draw(img)
    side = size - 2 * margin

    def xy(fpr: float, tpr: float) -> tuple[float, float]:
        return margin + fpr * side, margin + (1 - tpr) * side

    draw.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    draw.line([xy(0, 0), xy(1, 1)], fill=(170, 170, 170), width=1)
    for t in (0.0, 0.5, 1.0):
        draw.text((xy(t, 0)[0] - 8, size - margin + 6), f"{t:.1f}", fill="black")
        draw.text((margin - 30, xy(0, t)[1] - 6), f"{t:.1f}", fill="black")
    draw.text((size / 2 - 60, size - margin + 22), "false positive rate", fill="black")
    draw.text((8, margin - 30), "true positive rate", fill="black")
    for j, finding in enumerate(findings[:20]):
        keep = ~np.isnan(y[:, j])
        colour = _COLOURS[j % len(_COLOURS)]
        if not np.isnan(aucs[j]):
            fpr, tpr, _ = roc_curve(y[keep, j] > 0.5, s[keep, j])
            draw.line([xy(a, b) for a, b in zip(fpr, tpr, strict=True)], fill=colour, width=2)
        label = "n/a" if np.isnan(aucs[j]) else f"{aucs[j]:.3f}"
        draw.text((margin, size + 16 * j), f"{finding}: AUROC {label}", fill=colour)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        img.save(tmp, format="PNG")
    return out
