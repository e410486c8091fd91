"""``ctlens payload``: works without ``--question`` and, like the service's payload, carries findings and crops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ctlens.analysis import chest_phantom
from ctlens.cli.cmd_payload import DEFAULT_QUESTION
from ctlens.cli.main import app
from ctlens.io import save


@pytest.fixture(scope="module")
def chest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    volume, _ = chest_phantom(nodule_radius_mm=9.0)
    path = tmp_path_factory.mktemp("ct") / "chest.nii.gz"
    save(volume, path)
    return path


def _payload(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, ["payload", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_default_question_findings_and_candidate_crops(chest: Path, tmp_path: Path) -> None:
    result = _payload(chest, "--budget", "6000", "--out", tmp_path / "p.json")
    payload = json.loads((tmp_path / "p.json").read_text())
    assert payload["question"] == DEFAULT_QUESTION
    assert "Automated findings (not a diagnosis): chest measurements:" in payload["text"]
    assert "nodule" in payload["text"]
    assert any(image["title"] == "candidate crops" for image in payload["images"])
    assert payload["token_estimate"] <= 6000
    assert "candidate(s)" in result.stdout


def test_no_analysis_sends_images_and_question_only(chest: Path, tmp_path: Path) -> None:
    _payload(chest, "-q", "Any nodule?", "--no-analysis", "--out", tmp_path / "p.json")
    payload = json.loads((tmp_path / "p.json").read_text())
    assert payload["question"] == "Any nodule?"
    assert "Automated findings" not in payload["text"]
    assert all(image["title"] != "candidate crops" for image in payload["images"])


def test_help_names_the_default_question() -> None:
    result = CliRunner().invoke(app, ["payload", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Describe the notable findings" in result.stdout
