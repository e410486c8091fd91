"""Metrics of the CLIP evaluation: AUROC, bootstrap that really resamples, validation-only thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ctlens.training.clip.evaluation import evaluate_scores
from ctlens.training.clip.metrics import (
    auroc,
    binary_metrics,
    bootstrap_ci,
    bootstrap_mean_ci,
    macro_mean,
    peer_protocol,
    recall_at_k,
    roc_curve_png,
    youden_thresholds,
)


def _scored(n: int, k: int, seed: int, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, k)).astype(float)
    return y, y * signal + rng.normal(0, 1, (n, k))


def test_auroc_matches_sklearn_with_ties_and_nan():
    y, s = _scored(200, 3, 0)
    s = np.round(s, 1)  # many ties
    y[::7, 1] = np.nan
    ours = auroc(y, s)
    keep = ~np.isnan(y[:, 1])
    assert ours[0] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))
    assert ours[1] == pytest.approx(roc_auc_score(y[keep, 1], s[keep, 1]))
    assert np.isnan(auroc(np.ones((5, 1)), np.arange(5.0))[0])  # one class: undefined


def test_bootstrap_really_resamples_patients():
    y, s = _scored(400, 1, 1)
    patients = [f"p{i // 2}" for i in range(400)]  # two scans per patient
    a = bootstrap_ci(auroc, y, s, patients, n_boot=1000, seed=0)
    b = bootstrap_ci(auroc, y, s, patients, n_boot=1000, seed=1)
    assert a["draws"].shape == (1000, 1)
    assert a["draws"].std() > 0.005  # draws differ: something was resampled
    assert not np.array_equal(a["draws"], b["draws"])  # different seeds, different draws
    assert (a["low"][0], a["high"][0]) != (b["low"][0], b["high"][0])
    assert a["low"][0] < a["estimate"][0] < a["high"][0]

    rows_seen, patients_seen = [], []

    def spy(yy: np.ndarray, ss: np.ndarray) -> np.ndarray:
        rows_seen.append(len(yy))
        patients_seen.append(len({round(v, 12) for v in ss[:, 0]}))
        return np.zeros(1)

    bootstrap_ci(spy, y, s, patients, n_boot=50, seed=0)
    assert set(rows_seen[:-1]) == {400}  # whole patients (2 rows each), as many patients as there are
    assert max(patients_seen[:-1]) < 400  # sampled with replacement: duplicates in every draw


def test_bootstrap_ci_shrinks_with_n():
    widths = []
    for n in (60, 240, 960):
        y, s = _scored(n, 1, 2)
        ci = bootstrap_ci(auroc, y, s, [str(i) for i in range(n)], n_boot=1000, seed=0)
        widths.append(ci["high"][0] - ci["low"][0])
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] > 2.5  # ~ sqrt(16) = 4 in theory


def test_thresholds_come_from_validation_only():
    yv, sv = _scored(300, 2, 3)
    yt, st = _scored(300, 2, 4)
    base = evaluate_scores(["a", "b"], yv, sv, yt, st, [str(i) for i in range(300)], n_boot=50)
    assert base["thresholds_from"] == "validation"
    assert base["thresholds"] == pytest.approx(youden_thresholds(yv, sv).tolist())
    # changing the TEST scores (a shift: same AUROC) leaves the thresholds alone; the F1 at them changes
    shifted = evaluate_scores(["a", "b"], yv, sv, yt, st + 1.5, [str(i) for i in range(300)], n_boot=50)
    assert shifted["thresholds"] == base["thresholds"]
    assert shifted["mean_auroc"] == pytest.approx(base["mean_auroc"])
    assert shifted["macro"]["f1"] != pytest.approx(base["macro"]["f1"])
    # while the peers' protocol re-picks its thresholds on the test set
    assert shifted["peers_protocol"]["thresholds"] == pytest.approx((youden_thresholds(yt, st) + 1.5).tolist())
    # and changing the VALIDATION scores does move them
    moved = evaluate_scores(["a", "b"], yv, sv * 2, yt, st, [str(i) for i in range(300)], n_boot=50)
    assert moved["thresholds"] != pytest.approx(base["thresholds"])


def test_binary_and_peer_metrics_agree_with_sklearn():
    y, s = _scored(120, 3, 5)
    thr = youden_thresholds(y, s)
    ours = binary_metrics(y, s, thr)
    for j in range(3):
        assert ours["f1"][j] == pytest.approx(f1_score(y[:, j], s[:, j] >= thr[j]))
    peers = peer_protocol(y, s)
    assert peers["f1_weighted"] == pytest.approx(f1_score(y, (s >= thr).astype(int), average="weighted"))


def test_recall_at_k_and_roc_png(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(20, 8))
    txt = img + rng.normal(0, 0.01, img.shape)
    img, txt = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (img, txt))
    assert recall_at_k(img, txt, ks=(1,))["image_to_text_R@1"] == 1.0
    shuffled = recall_at_k(img, txt[::-1], ks=(1, 20))
    assert shuffled["image_to_text_R@1"] < 0.2 and shuffled["image_to_text_R@20"] == 1.0
    y, s = _scored(50, 2, 6)
    png = roc_curve_png(tmp_path / "roc.png", y, s, ["a", "b"])
    from PIL import Image

    assert Image.open(png).size[0] == 480


@pytest.mark.parametrize("n", [5, 20, 64])
def test_recall_ties_never_flatter_a_collapsed_model(n):
    # issue 22 point 5: all-equal embeddings used to give R@1 = 1.0
    same = np.tile(np.array([[0.6, 0.8]]), (n, 1))
    r = recall_at_k(same, same, ks=(1, 5))
    assert r["image_to_text_R@1"] == pytest.approx(1 / n) and r["text_to_image_R@1"] == pytest.approx(1 / n)
    assert r["image_to_text_R@5"] == pytest.approx(min(5, n) / n)
    # image 0 ties with one other text (1/2 a hit at k=1), image 1 with two (1/3), image 2 is alone (1)
    img = np.eye(3)
    txt = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]])  # texts 0 and 1 identical
    pair = recall_at_k(img, txt, ks=(1, 2))
    assert pair["image_to_text_R@1"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert pair["image_to_text_R@2"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert pair["text_to_image_R@1"] == pytest.approx((1 + 0 + 1) / 3)


def test_macro_means_say_what_they_cover_and_bootstrap_counts_discards():
    rng = np.random.default_rng(7)
    n = 40
    yt = rng.integers(0, 2, (n, 4)).astype(float)
    yt[:, 2] = 0  # finding c: no positives in test
    yt[:4, 3], yt[4:, 3] = 1, 0  # finding d: 4 positives -> many draws have none
    st = yt + rng.normal(0, 0.7, yt.shape)
    st[3, 1] = np.nan  # finding b: a non-finite score
    yv = rng.integers(0, 2, (n, 4)).astype(float)
    yv[:, 0] = 1  # finding a: validation has one class -> no threshold
    sv = yv + rng.normal(0, 0.7, yv.shape)
    r = evaluate_scores(["a", "b", "c", "d"], yv, sv, yt, st, [str(i // 2) for i in range(n)], n_boot=300)
    covers = r["mean_auroc_covers"]
    assert (covers["covers"], covers["of"]) == (2, 4)
    assert covers["skipped"] == {"b": "non-finite test scores", "c": "test has no positives"}
    assert r["mean_auroc"] == pytest.approx(np.mean([r["per_finding"]["auroc"][0], r["per_finding"]["auroc"][3]]))
    f1 = r["macro_covers"]["f1"]
    assert f1["covers"] == 1 and f1["skipped"]["a"] == "validation has no negatives (no threshold)"
    assert set(f1["skipped"]) == {"a", "b", "c"}  # the test-side reasons hold for every metric's mean
    boot = r["bootstrap"]
    d_discarded = boot["discarded_per_finding"]["auroc"]["d"]
    assert 0 < d_discarded < 300  # draws without a positive for d are counted, not silently dropped
    # the mean's CI uses only draws where every covered finding is defined: a fixed finding set
    assert boot["mean_auroc_draws_discarded"] == d_discarded
    assert boot["mean_auroc_draws_used"] + boot["mean_auroc_draws_discarded"] == 300
    assert "(2 of 4)" in r["table_markdown"]


def test_mean_ci_uses_a_fixed_finding_set():
    # one finding near 1.0 always defined, one near 0.5 undefined in most draws: a varying set would pull
    # the draws' means up towards 1.0 whenever the weak finding drops out
    draws = np.array([[1.0, 0.5]] * 10 + [[1.0, np.nan]] * 90)
    ci = bootstrap_mean_ci(draws, [0, 1])
    assert ci["used"] == 10 and ci["discarded"] == 90
    assert ci["low"] == pytest.approx(0.75) and ci["high"] == pytest.approx(0.75)
    assert macro_mean(["a", "b"], np.array([np.nan, np.nan]))["covers"] == 0
