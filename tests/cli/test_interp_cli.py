"""``ctlens interpolate`` and ``ctlens interp eval`` end to end (real files, real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import ctlens
from ctlens.cli.main import app


def _write(tmp_path: Path, slices: int = 9) -> Path:
    z, y, x = np.mgrid[:slices, :32, :32]
    arr = np.where((y - 16) ** 2 + (x - 14 - z) ** 2 < 80, 60, -1000).astype(np.int16)
    path = tmp_path / "ct.nii.gz"
    ctlens.save(ctlens.Volume(arr, spacing=(4.0, 0.8, 0.8)), path)
    return path


def test_interpolate_command_writes_thin_volume(tmp_path: Path) -> None:
    src = _write(tmp_path)
    out = tmp_path / "thin.nii.gz"
    result = CliRunner().invoke(app, ["interpolate", str(src), str(out), "--spacing", "1.0", "--method", "flow"])
    assert result.exit_code == 0, result.output
    thin = ctlens.load(out)
    assert thin.shape == (33, 32, 32)
    np.testing.assert_allclose(thin.spacing, (1.0, 0.8, 0.8), atol=1e-5)


def test_interpolate_command_errors_are_one_line(tmp_path: Path) -> None:
    src = _write(tmp_path)
    out = tmp_path / "thick.nii.gz"
    result = CliRunner().invoke(app, ["interpolate", str(src), str(out), "--spacing", "8"])
    assert result.exit_code == 2
    assert "factor 0.5 < 1" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_interp_eval_command(tmp_path: Path) -> None:
    _write(tmp_path, slices=17)
    out = tmp_path / "eval"
    args = ["interp", "eval", str(tmp_path), "--out", str(out), "--methods", "linear,cubic", "--axis", "z"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in payload["rows"]} == {"linear", "cubic"}
    assert {r["simulation"] for r in payload["rows"]} == {"drop", "slab"}
    assert list(out.glob("grid_*.png"))
