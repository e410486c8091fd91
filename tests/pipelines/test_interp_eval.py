"""The evaluation harness: only synthesised slices are scored, PSNR edge cases, reports and PNG grids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

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
