"""The evaluation harness: only synthesised slices are scored, PSNR edge cases, reports and PNG grids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ctlens.core.errors import InterpolationError
from ctlens.pipelines.interp.evaluation import evaluate_array, scored_indices, summarise, write_grid, write_reports
from ctlens.pipelines.interp.metrics import psnr, ssim


def _truth() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0, 300, (17, 24, 24)).astype(np.float32)


@pytest.mark.parametrize("simulation", ["drop", "slab"])
def test_known_slices_are_never_scored(simulation: str) -> None:
    gt = _truth()
    known = np.arange(17) % 4 == 0

    def perfect_where_scored(thick: np.ndarray, positions: np.ndarray, factor: int) -> np.ndarray:
        out = gt.copy()
        out[known] = np.nan  # garbage exactly at the known positions
        return out

    def perfect_only_where_known(thick: np.ndarray, positions: np.ndarray, factor: int) -> np.ndarray:
        out = np.full_like(gt, 3071.0)
        out[known] = gt[known]
        return out

    rows = evaluate_array(gt, 4, simulation, [perfect_where_scored, perfect_only_where_known], progress=False)
    assert rows[0]["method"] == "perfect_where_scored"
    assert rows[0]["psnr"] == math.inf and rows[0]["ssim"] == pytest.approx(1.0)
    assert rows[0]["nonfinite"] == 0  # the NaNs sit only on known slices, never looked at
    assert rows[1]["psnr"] < 10  # right on every known slice, wrong elsewhere: scored as wrong
    assert rows[0]["scored_slices"] == 12 and rows[0]["known_slices"] == 5
    assert scored_indices(17, 4).tolist() == [i for i in range(17) if i % 4]


def test_psnr_of_copy_is_inf_of_noise_is_low_and_nan_is_penalised() -> None:
    gt = _truth()
    assert psnr(gt, gt) == math.inf
    noise = np.random.default_rng(1).uniform(-1024, 3071, gt.shape)
    assert psnr(noise, gt) < 12
    assert ssim(noise, gt) < 0.2
    broken = gt.copy()
    broken[0, 0, 0] = np.nan
    assert math.isfinite(psnr(broken, gt)) and psnr(broken, gt) < psnr(gt + 1.0, gt)
    assert math.isnan(psnr(gt, np.full_like(gt, np.nan)))  # nothing to score -> nan, not a number that flatters


def test_reports_handle_inf_and_nan_and_baselines_rank_sensibly(tmp_path: Path) -> None:
    z, y, x = np.mgrid[:17, :24, :24]
    smooth = (400 * np.sin(z / 3.0) * np.cos(y / 5.0) + 100 * np.cos(x / 4.0)).astype(np.float32)
    rows = evaluate_array(smooth, 4, "drop", ["nearest", "linear", "cubic"], progress=False, keep_predictions=True)
    by = {r["method"]: r for r in rows}
    assert by["nearest"]["psnr"] < by["linear"]["psnr"] < by["cubic"]["psnr"]
    grid = write_grid(rows, tmp_path / "grid.png")
    assert grid.stat().st_size > 100
    for r in rows:
        r.pop("_prediction"), r.pop("_truth")
    rows.append(dict(rows[0], method="copy", psnr=math.inf, psnr_body=math.inf))
    rows.append(dict(rows[0], method="broken", psnr=math.nan, psnr_body=math.nan, ssim=math.nan, error="boom"))
    paths = write_reports(rows, tmp_path)
    payload = json.loads(paths["json"].read_text())  # strict JSON: no NaN / Infinity literals
    assert {r["method"]: r["psnr"] for r in payload["rows"]}["copy"] == "inf"
    assert {r["method"]: r["psnr"] for r in payload["rows"]}["broken"] is None
    text = paths["md"].read_text()
    assert "| inf |" in text and "boom" in text
    gains = {r["method"]: r["gain_over_cubic"] for r in summarise(rows)}
    assert gains["cubic"] == 0.0 and gains["nearest"] < 0


def _row(case: str, method: str, psnr_value: float, axis: str = "x", group: str | None = None, **extra) -> dict:
    row = dict(
        case=case,
        group=group or case,
        axis=axis,
        simulation="slab",
        factor=4,
        method=method,
        psnr=psnr_value,
        psnr_body=psnr_value,
        ssim=0.9,
        seconds=1.0,
        scored_slices=3,
        known_slices=2,
        nonfinite=0,
        error=None,
    )
    return {**row, **extra}


def test_a_method_failing_on_one_case_is_reported_failing_not_as_a_higher_mean(tmp_path: Path) -> None:
    # issue 22 point 11: "flow" fails on the hard case c; it used to average a, b only and show +12 dB
    rows = [_row(c, "cubic", p) for c, p in (("a", 40.0), ("b", 40.0), ("c", 20.0))]
    rows += [_row("a", "flow", 41.0), _row("b", "flow", 41.0)]
    rows.append(_row("c", "flow", math.nan, error="RuntimeError: diverged"))
    rows += [_row(c, "linear", p) for c, p in (("a", 39.0), ("b", 39.0))]  # no row at all for c
    by = {r["method"]: r for r in summarise(rows)}
    assert by["flow"]["cases"] == 3 and by["flow"]["failed"] == 1
    assert math.isnan(by["flow"]["psnr"]) and math.isnan(by["flow"]["gain_over_cubic"])
    assert by["linear"]["failed"] == 1 and math.isnan(by["linear"]["psnr"])  # a missing case counts as failed
    assert by["cubic"]["psnr"] == pytest.approx(100 / 3) and by["cubic"]["failed"] == 0
    text = write_reports(rows, tmp_path)["md"].read_text()
    assert "failed on 1 of 3" in text
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert {r["method"]: r["failed"] for r in summary}["flow"] == 1


def test_gain_is_paired_with_a_study_bootstrap_and_through_plane_cases_stand_alone() -> None:
    gains = {"a": 3.0, "b": 1.0, "b2": 1.2, "c": 0.5, "z1": -0.2}
    rows = []
    for case, gain in gains.items():
        axis = "z" if case.startswith("z") else "x"
        group = "B" if case.startswith("b") else case  # b and b2: two series of one study
        rows += [_row(case, "cubic", 30.0, axis, group), _row(case, "smart", 30.0 + gain, axis, group)]
    summary = summarise(rows)
    by = {(r["scope"], r["method"]): r for r in summary}
    assert by[("all", "smart")]["gain_over_cubic"] == pytest.approx(np.mean(list(gains.values())))
    assert by[("through-plane", "smart")]["cases"] == 1
    assert by[("through-plane", "smart")]["gain_over_cubic"] == pytest.approx(-0.2)
    assert by[("in-plane", "smart")]["gain_over_cubic"] == pytest.approx(np.mean([3.0, 1.0, 1.2, 0.5]))
    low, high = by[("all", "smart")]["gain_ci"]
    assert low < by[("all", "smart")]["gain_over_cubic"] < high and by[("all", "smart")]["units"] == 4
    assert math.isnan(by[("through-plane", "smart")]["gain_ci"][0])  # one unit: no interval, not a fake one


def test_self_supervised_is_scored_told_the_matched_and_the_mismatched_profile() -> None:
    z, y, x = np.mgrid[:9, :24, :24]
    thin = (300 * np.sin(z / 2.0 + y / 5.0) * np.cos(x / 4.0)).astype(np.float32)
    rows = evaluate_array(
        thin,
        4,
        "slab",
        ["cubic", "self_supervised"],
        progress=False,
        options={"self_supervised": {"steps": 1}},
        smore_profiles=("matched", "mismatched"),
    )
    told = {r["method"]: r.get("told_profile") for r in rows}
    assert told == {"cubic": None, "self_supervised": "slab", "self_supervised_mismatched": "drop"}
    assert all(r["error"] is None for r in rows)


def test_the_told_profile_reaches_the_method_for_dropped_slices_too() -> None:
    # issue 22 point 8: on dropped slices the honest row is the method told "slab"; check that the label is
    # not just a label: told "drop" it copies the known slices back, told "slab" it does not
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[:9, :24, :24]
    thin = (300 * np.sin(z / 2.0 + y / 5.0) * np.cos(x / 4.0) + rng.normal(0, 30, z.shape)).astype(np.float32)
    rows = evaluate_array(
        thin,
        4,
        "drop",
        ["self_supervised"],
        progress=False,
        options={"self_supervised": {"steps": 2}},
        smore_profiles=("mismatched", "matched"),
        keep_predictions=True,
    )
    by = {r["method"]: r for r in rows}
    assert by["self_supervised"]["told_profile"] == "drop"
    assert by["self_supervised_mismatched"]["told_profile"] == "slab"
    known = np.arange(9) % 4 == 0
    np.testing.assert_array_equal(by["self_supervised"]["_prediction"][known], thin[known])
    assert not np.array_equal(by["self_supervised_mismatched"]["_prediction"][known], thin[known])


def test_an_unknown_told_profile_is_a_clear_error() -> None:
    with pytest.raises(InterpolationError, match="matched or mismatched"):
        evaluate_array(_truth(), 4, "slab", ["self_supervised"], progress=False, smore_profiles=("exact",))


def test_each_scope_averages_the_same_cases_and_a_failure_shows_only_where_it_happened() -> None:
    # flow fails on the in-plane case only: failing in "all" and "in-plane", a mean in "through-plane"
    rows = [_row("z1", "cubic", 30.0, "z"), _row("z1", "flow", 31.0, "z")]
    rows += [_row("z2", "cubic", 32.0, "z"), _row("z2", "flow", 34.0, "z")]
    rows += [_row("x1", "cubic", 35.0, "x"), _row("x1", "flow", math.nan, "x", error="RuntimeError: no flow")]
    by = {(r["scope"], r["method"]): r for r in summarise(rows)}
    assert by[("through-plane", "flow")]["failed"] == 0
    assert by[("through-plane", "flow")]["gain_over_cubic"] == pytest.approx(1.5)
    assert by[("through-plane", "flow")]["psnr"] == pytest.approx(32.5)
    for scope in ("all", "in-plane"):
        assert by[(scope, "flow")]["failed"] == 1 and math.isnan(by[(scope, "flow")]["gain_over_cubic"])
        assert math.isnan(by[(scope, "flow")]["psnr"]) and math.isnan(by[(scope, "flow")]["ssim"])
    assert by[("all", "cubic")]["cases"] == 3 and by[("all", "cubic")]["psnr"] == pytest.approx(97 / 3)


def test_a_failing_baseline_gives_no_gain_rather_than_a_gain_over_fewer_cases() -> None:
    rows = [_row("a", "cubic", 30.0), _row("a", "flow", 31.0), _row("b", "flow", 40.0)]
    rows.append(_row("b", "cubic", math.nan, error="ValueError: boom"))
    by = {r["method"]: r for r in summarise(rows)}
    assert by["cubic"]["failed"] == 1
    assert by["flow"]["failed"] == 0 and by["flow"]["psnr"] == pytest.approx(35.5)
    assert math.isnan(by["flow"]["gain_over_cubic"]) and math.isnan(by["flow"]["gain_ci"][0])
