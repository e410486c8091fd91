"""``ctlens analyze-eval``: per-series and overall figures, development marking, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ctlens.analysis import chest_phantom
from ctlens.io import save
from ctlens.preprocess.orientation import reorient
from shared_data import data_dir


def _run(*args: str | Path):
    from ctlens.cli.main import app

    return CliRunner().invoke(app, ["analyze-eval", *map(str, args)], env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eval")
    vol, truth = chest_phantom(nodule_radius_mm=9.0)
    save(reorient(vol, "RAS"), folder / "case1.nii.gz")
    save(chest_phantom()[0], folder / "case2.nii.gz")
    centre = vol.world(truth["nodule_voxel"])
    rows = [f"case1,{centre[0]},{centre[1]},{centre[2]},18", "case2,0,0,0,10"]  # case2: a lesion nobody finds
    (folder / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n" + "\n".join(rows) + "\n")
    return folder


def test_report_json_and_development_marking(cases, tmp_path):
    (tmp_path / "dev.txt").write_text("# tuned on\ncase2\n")
    result = _run(
        cases / "case1.nii.gz",
        cases / "case2.nii.gz",
        "--coords",
        cases / "annotations.csv",
        "--dev-series-file",
        tmp_path / "dev.txt",
        "--out",
        tmp_path / "r.json",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "case1: region chest" in out and "rank 1 (score" in out and "missed" in out
    assert "case2 [DEVELOPMENT]" in out and "case1 [DEVELOPMENT]" not in out
    assert "overall, all series: 2 series (0 failed), 2 lesion(s), found 1, rank 1: 1" in out
    assert "overall, held-out series (not used for development): 1 series" in out
    assert "FROC sensitivity at false candidates per scan {1: " in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["overall"]["all"]["lesions"] == 2 and data["overall"]["held_out"]["found"] == 1
    assert data["overall"]["held_out"]["froc"]["sensitivity"]["1.0"] == 1.0
    assert data["overall"]["all"]["froc"]["sensitivity"]["4.0"] == 0.5
    assert data["series"][1]["development"].startswith("case2") and data["development_series"] == {
        "case2": "named with --dev-series"
    }
    assert data["series"][0]["lesions"][0]["rank"] == 1 and data["series"][1]["lesions"][0]["rank"] is None


def test_errors_are_one_line(cases, tmp_path):
    none = _run(cases / "case1.nii.gz")
    assert none.exit_code == 2 and "no annotations given" in none.output and "Traceback" not in none.output
    missing = _run(tmp_path / "nope.nii.gz", "--coords", cases / "annotations.csv")
    assert missing.exit_code == 2 and "nope.nii.gz" in missing.output
    (tmp_path / "bad.csv").write_text("seriesuid,coordX\n1,2\n")
    bad = _run(cases / "case1.nii.gz", "--coords", tmp_path / "bad.csv", "--out", tmp_path / "r.json")
    assert bad.exit_code == 2 and "bad.csv" in bad.output and "lacks the columns" in bad.output
    assert not (tmp_path / "r.json").exists()
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    failed = _run(tmp_path / "broken.nii.gz", "--coords", cases / "annotations.csv")
    assert failed.exit_code == 2 and "broken: FAILED" in failed.output and "1 failed" in failed.output


@pytest.mark.shared_data
def test_shared_lung_dx_series(tmp_path):
    root = data_dir() / "lung_pet_ct_dx"
    result = _run(root, "--voc", root / "annotations", "--out", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    names = [s["name"] for s in data["series"]]
    assert any("B40f" in n for n in names) and any("B70f" in n for n in names)
    for s in data["series"]:
        assert s["development"] and s["lesions"] and s["lesions"][0]["rank"] == 1 and s["false_candidates"] <= 3
        assert s["lesions"][0]["iou_2d_mean"] >= 0.3
    [pair] = data["laa950_kernel_agreement"]
    assert sorted(pair["kernels"]) == ["B40f", "B70f"] and pair["spread_pp"] <= 2.0
    assert data["overall"]["held_out"]["series"] == 0
    assert "no held-out series" in result.output and "Lung_Dx-A0002" in result.output
    assert np.isclose(data["overall"]["all"]["froc"]["sensitivity"]["1.0"], 1.0)
