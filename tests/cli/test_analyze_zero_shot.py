"""``ctlens analyze --clip-checkpoint``: zero-shot scores in the findings JSON and the summary; no torch without."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctlens.analysis import chest_phantom
from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.io import save


@pytest.fixture(scope="module")
def chest_file(tmp_path_factory) -> Path:
    vol, _ = chest_phantom(nodule_radius_mm=9.0)
    path = tmp_path_factory.mktemp("ct") / "chest.nii.gz"
    save(vol, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from ctlens.models.clip3d import build_model, load_config
    from ctlens.models.clip3d.checkpoint import save_model_weights

    torch.manual_seed(0)
    return save_model_weights(build_model(load_config("ctclip-tiny")), tmp_path_factory.mktemp("clip") / "tiny-clip")


def _analyze(*args: str | Path, env: dict[str, str] | None = None):
    from ctlens.cli.main import app

    return CliRunner().invoke(app, ["analyze", *map(str, args)], env={"COLUMNS": "200", **(env or {})})


def test_clip_checkpoint_adds_zero_shot_to_json_and_summary(chest_file, checkpoint, tmp_path):
    result = _analyze(chest_file, "--out", tmp_path / "f.json", "--clip-checkpoint", checkpoint, "--top", "3")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "f.json").read_text())
    probs = data["zero_shot"]
    assert list(probs) == list(CT_RATE_FINDINGS) and all(0.0 < p < 1.0 for p in probs.values())
    assert "not diagnoses" in data["zero_shot_note"] and data["parameters"]["zero_shot"]["checkpoint"] == "tiny-clip"
    assert data["region"] == "chest" and data["candidates"]  # the analysis itself is unchanged
    best = max(probs, key=probs.get)
    assert "zero-shot probabilities" in result.output and f"{best}: {probs[best]:.2f}" in result.output
    shown = [name for name in CT_RATE_FINDINGS if f"    {name}: " in result.output]
    assert len(shown) == 3


def test_setting_is_the_default_and_a_bad_checkpoint_fails_cleanly(chest_file, checkpoint, tmp_path):
    result = _analyze(chest_file, "--out", tmp_path / "f.json", env={"CTLENS_CLIP_CHECKPOINT": str(checkpoint)})
    assert result.exit_code == 0, result.output
    assert list(json.loads((tmp_path / "f.json").read_text())["zero_shot"]) == list(CT_RATE_FINDINGS)
    bad = _analyze(chest_file, "--out", tmp_path / "g.json", "--clip-checkpoint", tmp_path / "nope")
    assert bad.exit_code == 2 and "not a CLIP3D checkpoint" in bad.output and not (tmp_path / "g.json").exists()


def test_analyze_without_a_checkpoint_never_imports_torch(chest_file, checkpoint, tmp_path):
    code = """
import sys
from typer.testing import CliRunner
from ctlens.cli.main import app
result = CliRunner().invoke(app, ["analyze", *sys.argv[1:]])
assert result.exit_code == 0, result.output
print("torch" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "CTLENS_CLIP_CHECKPOINT"}

    def torch_imported(*args: str | Path) -> str:
        run = subprocess.run(
            [sys.executable, "-c", code, str(chest_file), *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout.strip().splitlines()[-1]

    assert torch_imported("--out", tmp_path / "a.json") == "False"
    assert "zero_shot_note" not in json.loads((tmp_path / "a.json").read_text())
    assert torch_imported("--out", tmp_path / "b.json", "--clip-checkpoint", checkpoint) == "True"  # the control


def test_head_ct_through_the_chest_checkpoint_warns_and_writes_no_scores(checkpoint, tmp_path):
    from ctlens.analysis.phantoms import head_phantom

    save(head_phantom()[0], tmp_path / "head.nii.gz")
    result = _analyze(tmp_path / "head.nii.gz", "--out", tmp_path / "h.json", "--clip-checkpoint", checkpoint)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "h.json").read_text())
    assert data["region"] == "head" and data["zero_shot"] == {} and "zero_shot_note" not in data
    assert data["parameters"]["zero_shot"]["trained_on"] == {"body_regions": ["chest"], "modality": "CT"}
    assert "zero-shot probabilities" not in result.output
    assert "zero-shot skipped" in " ".join(result.output.split()) and "body region head" in result.output
