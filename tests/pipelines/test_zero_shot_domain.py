"""Zero-shot scores only inside the checkpoint's training domain (body region and modality, #15).

Tiny checkpoints are built here; the domain is recorded in their config.json (old ones without it: chest CT).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ctlens.analysis import analyze, chest_phantom
from ctlens.analysis.findings import Findings
from ctlens.analysis.phantoms import head_phantom
from ctlens.core.volume import Volume
from ctlens.models.clip3d import build_model, load_config
from ctlens.models.clip3d.checkpoint import save_model_weights
from ctlens.pipelines.embed import load_clip
from ctlens.pipelines.zero_shot import OutOfDomainError, add_zero_shot, domain_problem, trained_domain, zero_shot

NAMES = ["Emphysema", "Lung nodule"]


def _checkpoint(folder, regions=None, modality=None):
    cfg = load_config("ctclip-tiny")
    if regions is not None:
        cfg.input.body_regions = tuple(regions)
    if modality is not None:
        cfg.input.modality = modality
    torch.manual_seed(0)
    return save_model_weights(build_model(cfg), folder)


@pytest.fixture(scope="module")
def chest_ck(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("clip") / "chest-clip")


@pytest.fixture(scope="module")
def head_ck(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("clip") / "head-clip", regions=["head"])


@pytest.fixture(scope="module")
def chest():
    return chest_phantom(nodule_radius_mm=8.0)[0]  # region chest (a 24x64x64 one at 4 mm reads as abdomen)


@pytest.fixture(scope="module")
def head():
    return head_phantom()[0]


def test_domain_is_recorded_in_the_checkpoint_and_old_ones_are_chest_ct(chest_ck, head_ck, tmp_path):
    assert json.loads((head_ck / "config.json").read_text())["input"]["body_regions"] == ["head"]
    assert trained_domain(load_clip(head_ck)) == {"body_regions": ["head"], "modality": "CT"}
    old = _checkpoint(tmp_path / "old-clip")
    cfg = json.loads((old / "config.json").read_text())
    del cfg["input"]["body_regions"], cfg["input"]["modality"]  # written before the fields existed
    (old / "config.json").write_text(json.dumps(cfg))
    assert trained_domain(load_clip(old)) == {"body_regions": ["chest"], "modality": "CT"}


def test_head_ct_through_a_chest_model_warns_and_gives_no_scores(chest_ck, head):
    findings = analyze(head)
    assert findings.region == "head"
    out = add_zero_shot(findings, head, chest_ck, NAMES)
    assert out.zero_shot == {} and "zero_shot_note" not in out.to_dict()
    warning = next(w for w in out.warnings if w.startswith("zero-shot skipped"))
    assert "body region head" in warning and "trained on chest CT" in warning
    zs = out.parameters["zero_shot"]
    assert zs["trained_on"] == {"body_regions": ["chest"], "modality": "CT"} and "head" in zs["skipped"]
    # without an analysis (region unknown) the region is detected on the volume itself
    bare = add_zero_shot(Findings(), head, chest_ck, NAMES)
    assert bare.zero_shot == {} and any("body region head" in w for w in bare.warnings)
    with pytest.raises(OutOfDomainError, match="body region head"):
        zero_shot(head, findings=NAMES, checkpoint=chest_ck, check_domain=True)
    assert set(zero_shot(head, findings=NAMES, checkpoint=chest_ck)) == set(NAMES)  # the default scores anything


def test_each_model_scores_its_own_region_only(chest_ck, head_ck, chest, head):
    for ck, inside, outside in ((chest_ck, chest, head), (head_ck, head, chest)):
        ok = add_zero_shot(analyze(inside), inside, ck, NAMES)
        assert list(ok.zero_shot) == NAMES and "skipped" not in ok.parameters["zero_shot"]
        assert not any(w.startswith("zero-shot skipped") for w in ok.warnings)
        no = add_zero_shot(analyze(outside), outside, ck, NAMES)
        assert no.zero_shot == {} and no.parameters["zero_shot"]["skipped"]
    assert domain_problem(chest, load_clip(chest_ck)) is None
    assert domain_problem(head, load_clip(head_ck)) is None


def test_mr_through_a_ct_model_warns(chest_ck, chest):
    rng = np.random.default_rng(0)
    mr = Volume(rng.integers(0, 800, (20, 48, 48)).astype(np.int16), spacing=(3.0, 3.0, 3.0), modality="MR")
    out = add_zero_shot(analyze(mr), mr, chest_ck, NAMES)
    assert out.zero_shot == {} and any("not CT" in w and "zero-shot skipped" in w for w in out.warnings)
    # the region argument does not rescue another modality; "any" region does not either
    any_ck = _checkpoint(chest_ck.parent / "any-clip", regions=["any"])
    assert "not CT" in domain_problem(mr, load_clip(any_ck), region="chest")
    assert domain_problem(head_phantom()[0], load_clip(any_ck)) is None
    mr_model = _checkpoint(chest_ck.parent / "mr-clip", regions=["any"], modality="MR")
    assert domain_problem(mr, load_clip(mr_model)) is None and "not MR" in domain_problem(chest, load_clip(mr_model))


def test_a_trained_region_covering_enough_slices_is_in_domain(chest_ck, chest):
    model = load_clip(chest_ck)
    assert domain_problem(chest, model, region="abdomen", coverage={"chest": 0.45, "abdomen": 0.55}) is None
    problem = domain_problem(chest, model, region="abdomen", coverage={"chest": 0.2, "abdomen": 0.8})
    assert problem and "body region abdomen" in problem


def test_training_records_the_domain(tmp_path):
    from ctlens.training.clip.synthetic import write_synthetic_ct_rate
    from ctlens.training.clip.train import ClipTrainConfig, train_clip

    paths = write_synthetic_ct_rate(tmp_path / "syn", 8, seed=3, shape=(8, 32, 32))
    cfg = ClipTrainConfig(
        ct=str(paths["h5"]),
        reports=str(paths["reports"]),
        val_size=0,
        model="ctclip-tiny",
        out_dir=str(tmp_path / "run"),
        batch_size=4,
        max_steps=1,
        warmup_steps=1,
        num_workers=0,
        validate_every=0,
        progress=False,
        threads=1,
        body_regions=["Head", "neck"],
    )
    result = train_clip(cfg)
    saved = json.loads((result.run_dir / "model" / "config.json").read_text())["input"]
    assert saved["body_regions"] == ["head", "neck"] and saved["modality"] == "CT"
    default = train_clip(ClipTrainConfig(**{**cfg.__dict__, "body_regions": None, "out_dir": str(tmp_path / "r2")}))
    assert json.loads((default.run_dir / "model" / "config.json").read_text())["input"]["body_regions"] == ["chest"]


def test_training_refuses_missing_backbone_weights_unless_allowed(tmp_path):
    from ctlens.models.clip3d.visual import BackboneWeightsError
    from ctlens.training.clip.train import ClipTrainConfig, _build

    cfg = json.loads(load_config("ctclip-tiny").to_json())
    cfg["vision"]["pretrained"] = str(tmp_path / "no-dinov2")
    (tmp_path / "m.json").write_text(json.dumps(cfg))
    with pytest.raises(BackboneWeightsError, match="not found"):
        _build(ClipTrainConfig(model=str(tmp_path / "m.json")))
    assert _build(ClipTrainConfig(model=str(tmp_path / "m.json"), allow_random_init=True)) is not None
    assert _build(ClipTrainConfig(model=str(tmp_path / "m.json"), resume="latest")) is not None  # resumes load weights
    assert _build(ClipTrainConfig(model="ctclip-tiny")) is not None  # pretrained null: random init chosen explicitly
