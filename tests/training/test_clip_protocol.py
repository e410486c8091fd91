"""Evaluation guards (issue 22 points 4 and 7): test / validation / training disjoint by patient, prompts unseen.

A tiny untrained CLIP on tiny synthetic files is enough: the guards run before anything is scored.
"""

from __future__ import annotations

import json

import pytest
import torch

from ctlens.core.errors import CTLensError
from ctlens.data.ct_report import CTReportDataset, patient_split, read_reports
from ctlens.models.clip3d import build_model, load_config
from ctlens.training.clip.evaluation import evaluate_zero_shot
from ctlens.training.clip.protocol import SplitOverlapError, check_disjoint, training_record
from ctlens.training.clip.synthetic import write_synthetic_ct_rate

OLD_ENSEMBLE_PAIR = (("There is {finding}.", "There is no {finding}."),)  # a synthetic report template


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("guards")
    return {
        "train": write_synthetic_ct_rate(root / "train", 12, seed=11, shape=(4, 16, 16)),
        "held": write_synthetic_ct_rate(root / "held", 16, seed=12, shape=(4, 16, 16), prefix="held_"),
        "root": root,
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(load_config("ctclip-tiny"))


def _sets(paths, test_names, val_names):
    args = (paths["h5"], paths["reports"], paths["labels"])
    return CTReportDataset(*args, names=test_names), CTReportDataset(*args, names=val_names)


def test_disjoint_sets_evaluate_and_record_the_check(files, model):
    held = CTReportDataset(files["held"]["h5"], files["held"]["reports"], files["held"]["labels"])
    train = CTReportDataset(files["train"]["h5"], files["train"]["reports"])
    test_names, val_names = patient_split(held.names, target_val_size=6, seed=0)
    test, val = _sets(files["held"], test_names, val_names)
    r = evaluate_zero_shot(model, test, val, n_boot=20, training_names=train.names)
    check = r["protocol"]["split_check"]
    assert check["level"] == "patient" and check["train"] == 12 and check["training_names_from"] == "given"


@pytest.mark.parametrize("leak", ["test_in_val", "test_in_train", "val_in_train"])
def test_overlap_is_refused(files, model, leak):
    held = CTReportDataset(files["held"]["h5"], files["held"]["reports"], files["held"]["labels"])
    test_names, val_names = patient_split(held.names, target_val_size=6, seed=0)
    train_names = ["train_0_a_1"]
    if leak == "test_in_val":  # the other re-scan of a test patient in validation: same patient
        partner = test_names[0][:-1] + ("2" if test_names[0].endswith("1") else "1")
        val_names = [*val_names, partner]
        test_names = [n for n in test_names if n != partner]
    elif leak == "test_in_train":
        train_names = [*train_names, test_names[0][:-1] + "9"]  # another scan of a test patient
    else:
        train_names = [*train_names, val_names[0]]
    test, val = _sets(files["held"], test_names, val_names)
    with pytest.raises(SplitOverlapError, match="share 1 patient"):
        evaluate_zero_shot(model, test, val, n_boot=20, training_names=train_names)


def test_training_names_come_from_the_run_folder(files, model, tmp_path):
    """What ``ctlens clip train`` writes (train_config.json with a split JSON, or val_size + seed) is read back."""
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    train = CTReportDataset(files["train"]["h5"], files["train"]["reports"])
    tr, va = patient_split(train.names, target_val_size=4, seed=3)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": tr, "val": va}))
    (run / "train_config.json").write_text(json.dumps({"ct": str(files["train"]["h5"]), "split": str(split)}))
    record = training_record(run / "model")
    assert (record.train, record.val) == (tr, va)
    cfg = {"ct": str(files["train"]["h5"]), "reports": str(files["train"]["reports"]), "val_size": 4, "seed": 3}
    (run / "train_config.json").write_text(json.dumps(cfg))
    record = training_record(run / "model")
    assert (record.train, record.val) == (tr, va) and "recomputed" in record.source
    # evaluating on the checkpoint's own training patients is refused
    test, val = _sets(files["train"], tr[:6], va)
    with pytest.raises(SplitOverlapError, match="test and the checkpoint's training volumes share 3 patient"):
        evaluate_zero_shot(model, test, val, n_boot=20, checkpoint=run / "model")
    assert training_record(tmp_path / "nothing") is None


def test_prompt_leak_is_refused(files, model):
    held = CTReportDataset(files["held"]["h5"], files["held"]["reports"], files["held"]["labels"])
    test_names, val_names = patient_split(held.names, target_val_size=6, seed=0)
    test, val = _sets(files["held"], test_names, val_names)
    reports = list(read_reports(files["train"]["reports"]).values())
    with pytest.raises(CTLensError, match="is in .* training report.*not be zero-shot"):
        evaluate_zero_shot(model, test, val, templates=OLD_ENSEMBLE_PAIR, n_boot=20, training_reports=reports)
    ok = evaluate_zero_shot(model, test, val, n_boot=20, training_reports=reports)
    assert ok["protocol"]["prompt_check"] == {"training_reports_checked": 12, "leaks": []}


def test_check_disjoint_compares_volumes_when_names_do_not_name_patients():
    assert check_disjoint(test=["a"], val=["b"], train=["c"])["level"] == "volume"
    with pytest.raises(SplitOverlapError, match="volume"):
        check_disjoint(test=["a.nii.gz"], train=["x/a"])
    assert check_disjoint(test=["a"], val=["b"], patients={"a": "P1", "b": "P2"})["level"] == "patient"
