"""The histogram baseline: logistic regression on 32-bin grey-level histograms, on the CLIP evaluation's splits.

A benchmark that a supervised classifier on intensity histograms alone solves says little about what a 3D
model learns (issue #22). This baseline sees no position, shape or count -- only how many voxels fall in
each of ``bins`` equal grey-level bins of the stored uint8 volume (fractions of all voxels) -- and is fitted
**with labels** on the training volumes (it is supervised, the CLIP is not), one logistic regression per
finding (standardised features, L2, ``C=1``; scikit-learn). Its scores go through the same
:func:`~ctlens.training.clip.evaluation.evaluate_scores` as the model's: thresholds from validation,
patient bootstrap on test.

Example:
    >>> rng = np.random.default_rng(0)
    >>> vols = rng.integers(0, 256, (6, 4, 8, 8), dtype=np.uint8)
    >>> histogram_features(vols).shape, bool(np.allclose(histogram_features(vols).sum(axis=1), 1))
    ((6, 32), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["dataset_histograms", "fit_predict", "histogram_baseline", "histogram_features"]

BINS = 32


def histogram_features(volumes: np.ndarray, bins: int = BINS) -> np.ndarray:
    """``[n, bins]`` fractions of voxels per equal-width bin of 0..255 for uint8 volumes ``[n, ...]``.

    Example:
        >>> histogram_features(np.array([[0, 255, 255, 8]], np.uint8), bins=4).tolist()
        [[0.5, 0.0, 0.0, 0.5]]
    """
    v = np.asarray(volumes)
    flat = v.reshape(v.shape[0], -1).astype(np.int64) * bins // 256
    counts = np.stack([np.bincount(row, minlength=bins) for row in flat]).astype(np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def dataset_histograms(dataset: Any, bins: int = BINS) -> tuple[np.ndarray, np.ndarray | None]:
    """``(features [n, bins], labels [n, k] or None)`` over a :class:`~ctlens.data.ct_report.CTReportDataset`."""
    feats, labels = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        feats.append(histogram_features(np.asarray(item["volume"])[None], bins)[0])
        if item["labels"] is not None:
            labels.append(np.asarray(item["labels"], np.float64))
    return np.stack(feats), (np.stack(labels) if len(labels) == len(feats) and labels else None)


def fit_predict(
    train_x: np.ndarray, train_y: np.ndarray, *others: np.ndarray, c: float = 1.0
) -> tuple[np.ndarray, ...]:
    """Fit one logistic regression per label column on ``train_x``; probabilities ``[n, k]`` for each of ``others``.

    Rows with a NaN label are left out of that column's fit; a column with one class in training gets NaN
    scores (reported as skipped by the evaluation, never silently dropped).

    Example:
        >>> rng = np.random.default_rng(0); y = rng.integers(0, 2, (80, 1)).astype(float)
        >>> x = np.hstack([y + rng.normal(0, 0.3, y.shape), rng.normal(size=(80, 3))])
        >>> (p,) = fit_predict(x[:60], y[:60], x[60:]); bool(((p[:, 0] > 0.5) == (y[60:, 0] > 0.5)).mean() > 0.8)
        True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    outs = [np.full((len(o), train_y.shape[1]), np.nan) for o in others]
    for j in range(train_y.shape[1]):
        keep = np.isfinite(train_y[:, j])
        y = train_y[keep, j] > 0.5
        if y.all() or not y.any():
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        model.fit(train_x[keep], y)
        for out, x in zip(outs, others, strict=True):
            out[:, j] = model.predict_proba(x)[:, 1]
    return tuple(outs)


def histogram_baseline(
    train_set: Any,
    val_set: Any,
    test_set: Any,
    findings: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    bins: int = BINS,
) -> dict[str, Any]:
    """The baseline's :func:`~ctlens.training.clip.evaluation.evaluate_scores` result on ``test_set``.

    Fitted on ``train_set`` (labels), thresholds from ``val_set``; ``findings`` are label columns.
    """
    from ctlens.training.clip.evaluation import evaluate_scores

    cols = [list(test_set.findings).index(f) for f in findings]
    (xtr, ytr), (xv, yv), (xt, yt) = (dataset_histograms(ds, bins) for ds in (train_set, val_set, test_set))
    if ytr is None or yv is None or yt is None:
        raise ValueError("the histogram baseline needs labels for the training, validation and test volumes")
    val_scores, test_scores = fit_predict(xtr, ytr[:, cols], xv, xt)
    patients = test_set.patients if hasattr(test_set, "patients") else test_set.names
    result = evaluate_scores(
        list(findings), yv[:, cols], val_scores, yt[:, cols], test_scores, patients, n_boot=n_boot, seed=seed
    )
    result.pop("_rows", None)
    result["method"] = f"logistic regression on {bins}-bin grey-level histograms (supervised)"
    return result
