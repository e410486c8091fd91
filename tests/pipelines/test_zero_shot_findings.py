"""Zero-shot scores in the analysis results: Findings.zero_shot, its JSON round trip, add_zero_shot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctlens.analysis import chest_phantom
from ctlens.analysis.findings import ZERO_SHOT_NOTE, Candidate, Findings
from ctlens.core.volume import Volume
from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.models.clip3d import build_model, load_config
from ctlens.models.clip3d.checkpoint import save_model_weights
from ctlens.pipelines.zero_shot import add_zero_shot, zero_shot


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_model_weights(build_model(load_config("ctclip-tiny")), tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def chest() -> Volume:
    return chest_phantom(nodule_radius_mm=8.0)[0]  # region chest (a 24x64x64 one at 4 mm reads as abdomen)


def test_findings_json_round_trip_keeps_zero_shot():
    f = Findings(region="chest", zero_shot={"Emphysema": 0.25, "Cardiomegaly": 0.7})
    f.candidates.append(Candidate(diameter_mm=6.0))
    d = f.to_dict()
    assert d["zero_shot"] == {"Emphysema": 0.25, "Cardiomegaly": 0.7} and d["zero_shot_note"] == ZERO_SHOT_NOTE
    g = Findings.from_json(f.to_json())
    assert g.zero_shot == f.zero_shot and list(g.zero_shot) == ["Emphysema", "Cardiomegaly"]
    assert Findings.from_dict(d).to_dict() == d
    empty = Findings(region="head").to_dict()
    assert empty["zero_shot"] == {} and "zero_shot_note" not in empty
    old = {k: v for k, v in empty.items() if k != "zero_shot"}  # files written before the field existed
    assert Findings.from_dict(old).zero_shot == {}


def test_add_zero_shot_from_a_checkpoint(checkpoint, chest):
    from ctlens.pipelines.embed import load_clip

    f = add_zero_shot(Findings(region="chest", parameters={"kept": 1}), chest, checkpoint)
    assert list(f.zero_shot) == list(CT_RATE_FINDINGS)
    assert all(0.0 < p < 1.0 for p in f.zero_shot.values()) and len(set(f.zero_shot.values())) > 1
    direct = zero_shot(chest, findings=CT_RATE_FINDINGS, model=load_clip(checkpoint))
    assert list(f.zero_shot.values()) == pytest.approx(list(direct.values()), abs=1e-5)
    zs = f.parameters["zero_shot"]
    assert zs["checkpoint"] == "tiny-clip" and zs["config"] == "ctclip-tiny" and zs["note"] == ZERO_SHOT_NOTE
    assert str(checkpoint.parent) not in f.to_json()  # the folder name only, not where it lives
    assert f.parameters["kept"] == 1 and f.timings["zero_shot"] > 0
    again = Findings.from_json(f.to_json())
    assert again.zero_shot == f.zero_shot and again.parameters["zero_shot"] == zs


def test_add_zero_shot_with_a_model_and_names(chest):
    torch.manual_seed(1)
    model = build_model(load_config("ctclip-tiny")).eval()
    f = add_zero_shot(Findings(), chest, model, ["Emphysema", "Lung nodule"], ensemble=True)
    assert list(f.zero_shot) == ["Emphysema", "Lung nodule"]
    assert f.parameters["zero_shot"]["checkpoint"] is None and f.parameters["zero_shot"]["prompts"] == "ensemble"
    flat = add_zero_shot(Findings(), Volume(np.zeros((1, 32, 32), np.uint8), modality="OT"), model)
    assert flat.zero_shot == {} and "3-D" in flat.warnings[0] and "zero_shot" not in flat.parameters
