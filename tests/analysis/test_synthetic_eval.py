"""Held-out synthetic evaluation (`ctlens analyze-eval --synthetic N --seed S`): runs end to end, counts every case,
refuses development seeds, scores planted lesions in any storage order, keeps failures in the figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ctlens.analysis.evaluation import SeriesResult
from ctlens.analysis.phantoms import chest_case_phantom, head_case_phantom
from ctlens.analysis.synthetic_eval import (
    HELD_OUT_MIN_SEED,
    REPORTED_SEEDS,
    STORAGE_ORDERS,
    _analyse,
    _chest_summary,
    _head_summary,
    check_seed,
    draw_chest_case,
    draw_head_case,
    run_synthetic,
    wilson,
)
from ctlens.cli.cmd_analyze_eval import register
from ctlens.core.errors import CTLensError

TEST_SEED = 10001  # a test seed: >= 10000 (the run must accept it), never used for reported figures


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps `analyze-eval` a sub-command
        pass

    return app


def test_synthetic_mode_runs_end_to_end_and_counts_every_case():
    report = run_synthetic(2, TEST_SEED, scale=2.0)
    assert not report["development_seed"]
    planted = sum(1 for c in report["cases"]["chest"] if c["nodule_radius_mm"] > 0)
    for kernel in ("soft", "sharp"):
        s = report["chest"][kernel]
        assert s["scans"] == 2 and s["froc"]["scans"] == 2
        assert s["nodules"] <= planted and s["found"] <= s["nodules"] and s["rank_1"] <= s["found"]
        assert set(s["froc"]["sensitivity"]) == {1.0, 2.0, 4.0}
        assert s["scans_vessel_tree"] + (s["false_per_scan_no_tree"] is not None) >= 1
    assert report["laa950"]["pairs"] == 2
    head = report["head"]
    assert head["cases"] == 2
    assert head["sensitivity"]["n"] + head["specificity"]["n"] == 2
    assert head["sensitivity"]["n"] == 1  # half the head cases carry a bleed
    json.dumps(report, default=str)  # the --out file is JSON


def test_cli_synthetic_prints_counts_and_writes_json(tmp_path):
    out = tmp_path / "synthetic.json"
    args = ["analyze-eval", "--synthetic", "1", "--seed", str(TEST_SEED), "--grid-scale", "2", "--out", str(out)]
    res = CliRunner().invoke(_app(), args)
    assert res.exit_code == 0, res.output
    assert "1 chest + 1 head cases (held out)" in res.output
    assert "chest soft: 1 scans" in res.output and "head: 1 cases" in res.output
    data = json.loads(out.read_text())
    assert data["seed"] == TEST_SEED and data["head"]["cases"] == 1


@pytest.mark.parametrize("seed", [0, 1, 9, 42, HELD_OUT_MIN_SEED - 1])
def test_development_seeds_are_refused(seed):
    with pytest.raises(CTLensError, match=f"seed {seed} is a development seed"):
        check_seed(seed)
    with pytest.raises(CTLensError, match="development seed"):
        run_synthetic(1, seed)
    res = CliRunner().invoke(_app(), ["analyze-eval", "--synthetic", "1", "--seed", str(seed)])
    assert res.exit_code != 0 and "development seed" in res.output and "Traceback" not in res.output


def test_reported_seeds_are_refused_and_the_test_seed_is_outside_both_lists():
    for seed in REPORTED_SEEDS:
        assert seed >= HELD_OUT_MIN_SEED
        with pytest.raises(CTLensError, match="already reported"):
            check_seed(seed)
    assert TEST_SEED >= HELD_OUT_MIN_SEED and TEST_SEED not in REPORTED_SEEDS
    check_seed(TEST_SEED)


def test_cli_synthetic_needs_a_seed_and_no_series(tmp_path):
    res = CliRunner().invoke(_app(), ["analyze-eval", "--synthetic", "1"])
    assert res.exit_code != 0 and "--seed" in res.output
    res = CliRunner().invoke(_app(), ["analyze-eval", str(tmp_path), "--synthetic", "1", "--seed", str(TEST_SEED)])
    assert res.exit_code != 0 and "takes no series" in res.output


def test_draws_cover_the_promised_variation_and_depend_on_the_seed():
    rng = np.random.default_rng(TEST_SEED)
    chest = [draw_chest_case(rng) for _ in range(300)]
    head = [draw_head_case(rng, bleed=i % 2 == 0) for i in range(300)]
    assert {c["spacing"][0] for c in chest} >= {1.0, 8.0}
    assert {c["nodule_side"] for c in chest} == {"left", "right"}
    assert {c["vessel_side"] for c in chest} == {None, "left", "right"}
    assert {c["order"] for c in chest} == set(STORAGE_ORDERS)
    assert any(c["nodule_radius_mm"] == 0 for c in chest) and max(c["nodule_radius_mm"] for c in chest) > 10
    assert all(c["noise"]["sharp"] > c["noise"]["soft"] for c in chest)
    assert min(h["bleed_hu"] for h in head) < 55 and max(h["bleed_radius_mm"] for h in head) > 10
    other = draw_chest_case(np.random.default_rng(TEST_SEED + 1))
    assert other != chest[0] and draw_chest_case(np.random.default_rng(TEST_SEED)) == chest[0]


@pytest.mark.parametrize("order", ["LPS", "RAI", "PLS", "ARS"])
def test_a_planted_nodule_is_scored_in_every_storage_order(order):
    vol, truth = chest_case_phantom(
        (160.0, 200.0, 260.0), (2.5, 1.5, 1.5), nodule_radius_mm=10.0, nodule_side="right", nodule_offset=(0.1, 0.1, 0)
    )
    res, findings = _analyse(vol, truth["nodule_mask"], order, "case")
    assert res.error is None and findings.region == "chest"
    assert [les.rank for les in res.lesions] == [1]
    assert findings.candidates[0].side == "right"


def test_a_head_bleed_is_found_and_a_normal_head_is_clean():
    vol, truth = head_case_phantom(spacing=(2.5, 1.5, 1.5), bleed_radius_mm=9.0, bleed_offset=(0.1, 0.2, -0.3))
    res, _ = _analyse(vol, truth["bleed_mask"], "RAI", "bleed")
    assert [les.rank for les in res.lesions] == [1]
    vol, truth = head_case_phantom(spacing=(2.5, 1.5, 1.5), noise_hu=5.0, noise_sigma_mm=1.0, seed=TEST_SEED)
    res, _ = _analyse(vol, truth["bleed_mask"], "LPS", "normal")
    assert res.error is None and res.lesions == [] and res.scores == []


def test_failed_scans_stay_in_the_figures():
    found = SeriesResult("a", "a", scores=[0.9], hits=[[0]])
    found.lesions = [type("L", (), {"rank": 1})()]
    failed = SeriesResult("b", "b", error="ValueError: broken")
    s = _chest_summary([(found, 1, False, 12.0, False), (failed, 1, True, 25.0, True)])
    assert s["scans"] == 2 and s["failed"] == 1 and s["nodules"] == 2 and s["found"] == 1
    assert s["froc"]["sensitivity"][1.0] == 0.5  # the failed scan's nodule counts as missed
    assert s["found_by_diameter"]["10-20 mm"] == {"nodules": 1, "found": 1}
    assert s["found_by_diameter"]["20-inf mm"] == {"nodules": 1, "found": 0}
    assert s["found_in_vessel_tree_lung"] == {"nodules": 1, "found": 0}
    head = [
        {"bleed": True, "truth_score": 0.9, "hit": True, "reported": 1, "error": None, "region": "head"},
        {"bleed": True, "truth_score": 0.9, "hit": False, "reported": 0, "error": "ValueError: x", "region": ""},
        {"bleed": False, "truth_score": 0.0, "hit": False, "reported": 0, "error": "ValueError: y", "region": ""},
        {"bleed": False, "truth_score": 0.0, "hit": False, "reported": 0, "error": None, "region": "head"},
    ]
    h = _head_summary(head)
    assert h["failed"] == 2
    assert (h["sensitivity"]["k"], h["sensitivity"]["n"]) == (1, 2)
    assert (h["specificity"]["k"], h["specificity"]["n"]) == (1, 2)  # a failed normal case is not a true negative


def test_wilson_interval_known_values():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson(10, 10)[1] == 1.0 and wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert all(np.isnan(wilson(0, 0)))
