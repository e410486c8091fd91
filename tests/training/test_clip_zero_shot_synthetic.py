"""Synthetic chest-CT benchmark: a tiny 3D CLIP trained for ~4 minutes on CPU learns zero-shot findings on
held-out volumes (new patients), while the same model untrained stays near 0.5 (issue 8: mean >= 0.85).

Model ``ctclip-tiny-lit``: a tiny per-slice ViT trained from scratch, fed three CT windows as its RGB
channels (lung, soft tissue, full range) and read out per slice as mean + max of its patch tokens, against
a frozen pretrained MiniLM (LiT-style; text features cached per distinct sentence); one random report
sentence per volume and step, no labels, 2000 steps. Seen: trained mean 0.951-0.955 over three seeds
(effusion, cardiomegaly, emphysema ~1.0, consolidation 0.98-0.99, lung nodule 0.78-0.80), untrained
0.46-0.55 (docs/clip3d.md).

The reports never contain the zero-shot prompt wording ("... is present." / "... is not present.").
Also exercises the CLI split and evaluate commands on the same files.

A regression check on development seeds (1, 2), not a result: the recipe and these pass thresholds were
chosen on the same held-out volumes (docs/evaluation.md). Results under the protocol (fresh seeds, the
histogram baseline beside, the harder spatial benchmark) come from benchmarks/clip_protocol.py.
"""

from __future__ import annotations

import json
import time

import pytest
import torch
from typer.testing import CliRunner

from ctlens.data.ct_report import CTReportDataset, patient_split
from ctlens.models.clip3d import build_model, load_config
from ctlens.training.clip.evaluation import evaluate_zero_shot
from ctlens.training.clip.synthetic import SYNTHETIC_FINDINGS, write_synthetic_ct_rate
from ctlens.training.clip.train import ClipTrainConfig, train_clip

N_TRAIN, N_HELD_OUT = 1024, 160
STEPS, LR, BATCH, WARMUP = 2000, 2e-3, 32, 50
MODEL = "ctclip-tiny-lit"  # tiny per-slice ViT (3 CT windows, mean+max) + frozen pretrained MiniLM


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than 2 contended threads for these tiny matrices
    yield
    torch.set_num_threads(before)


def test_tiny_clip_learns_zero_shot_findings(tmp_path, one_thread):
    train_files = write_synthetic_ct_rate(tmp_path / "train", N_TRAIN, seed=1)
    held_files = write_synthetic_ct_rate(tmp_path / "held", N_HELD_OUT, seed=2, prefix="held")
    held = CTReportDataset(held_files["h5"], held_files["reports"], held_files["labels"])
    test_names, val_names = patient_split(held.names, target_val_size=64, seed=0)
    val = CTReportDataset(held_files["h5"], held_files["reports"], held_files["labels"], names=val_names)
    test = CTReportDataset(held_files["h5"], held_files["reports"], held_files["labels"], names=test_names)
    train = CTReportDataset(train_files["h5"], train_files["reports"], train_files["labels"])
    assert len(train) == N_TRAIN and len(test) >= 90

    torch.manual_seed(0)
    model = build_model(load_config(MODEL))
    untrained = evaluate_zero_shot(model, test, val, n_boot=200, seed=0)
    assert set(untrained["findings"]) == set(SYNTHETIC_FINDINGS)  # NaN-only CT-RATE columns are left out
    assert abs(untrained["mean_auroc"] - 0.5) < 0.12, untrained["per_finding"]["auroc"]

    cfg = ClipTrainConfig(
        out_dir=str(tmp_path / "run"),
        batch_size=BATCH,
        max_steps=STEPS,
        lr=LR,
        warmup_steps=WARMUP,
        weight_decay=0.05,
        num_workers=0,
        validate_every=STEPS,
        save_every=STEPS,
        log_every=25,
        progress=False,
        sentences=1,  # one random report sentence per volume and step (label-free)
    )
    started = time.perf_counter()
    result = train_clip(cfg, train_set=train, val_set=val, model=model)
    print(f"trained {STEPS} steps in {time.perf_counter() - started:.1f} s")
    assert result.steps == STEPS and result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    trained = evaluate_zero_shot(model, test, val, n_boot=1000, seed=0, out_dir=tmp_path / "eval")
    aucs = dict(zip(trained["findings"], trained["per_finding"]["auroc"], strict=True))
    print("untrained", round(untrained["mean_auroc"], 3), untrained["per_finding"]["auroc"])
    print("trained", round(trained["mean_auroc"], 3), aucs)
    assert trained["mean_auroc"] >= 0.85, aucs  # the target
    assert trained["mean_auroc"] >= untrained["mean_auroc"] + 0.25, aucs
    for finding in ("Pleural effusion", "Cardiomegaly", "Emphysema", "Consolidation"):
        assert aucs[finding] >= 0.9, aucs
    assert aucs["Lung nodule"] >= 0.65, aucs  # the hardest: 2-4 small spheres
    low, high = trained["mean_auroc_ci"]
    assert low < trained["mean_auroc"] < high and high - low < 0.15
    assert trained["thresholds_from"] == "validation"
    assert trained["retrieval"]["image_to_text_R@10"] > 10 / len(test)  # better than chance
    assert (tmp_path / "eval" / "roc_curves.png").stat().st_size > 2000
    assert "Pleural effusion" in (tmp_path / "eval" / "metrics_table.md").read_text()

    # the CLI on the same files: split, then evaluate the trained checkpoint
    from ctlens.cli.main import app

    runner = CliRunner()
    split = tmp_path / "split.json"
    out = runner.invoke(
        app,
        ["clip", "split", "--ct", str(held_files["h5"]), "--target-val-size", "64", "--seed", "0", "--out", str(split)],
    )
    assert out.exit_code == 0, out.output
    names = json.loads(split.read_text())
    assert names["val"] == val_names
    split.write_text(json.dumps({"val": names["val"], "test": names["train"]}))
    out = runner.invoke(
        app,
        [
            "clip",
            "evaluate",
            "--checkpoint",
            str(tmp_path / "run" / "model"),
            "--ct",
            str(held_files["h5"]),
            "--reports",
            str(held_files["reports"]),
            "--labels",
            str(held_files["labels"]),
            "--split",
            str(split),
            "--out",
            str(tmp_path / "cli_eval"),
            "--n-boot",
            "100",
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "cli_eval" / "metrics.json").read_text())["mean_auroc"] == pytest.approx(
        trained["mean_auroc"], abs=1e-4
    )
