"""`ctlens clip synthetic` writes the benchmark files; `ctlens clip train` runs the recipe's options on them."""

from __future__ import annotations

import csv
import json
import re

import h5py
from typer.testing import CliRunner

from ctlens.cli.main import app


def test_clip_synthetic_then_train_with_sentence_sampling(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["clip", "synthetic", str(tmp_path / "data"), "--n", "12", "--seed", "3"])
    assert out.exit_code == 0, out.output
    with h5py.File(tmp_path / "data" / "volumes.h5") as h5:
        assert len(h5) == 12 and h5["train_0_a_1"].shape == (32, 64, 64)
    with open(tmp_path / "data" / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and {r["Emphysema"] for r in rows} <= {"0", "1"} and rows[0]["Hiatal hernia"] == ""

    args = ["clip", "train", "--ct", str(tmp_path / "data" / "volumes.h5")]
    args += ["--reports", str(tmp_path / "data" / "reports.csv"), "--model", "ctclip-tiny-lit"]
    args += ["--batch-size", "4", "--max-steps", "2", "--warmup-steps", "1", "--lr", "2e-3", "--sentences", "1"]
    args += ["--weight-decay", "0.05", "--threads", "1", "--val-size", "4", "--num-workers", "0"]
    args += ["--out-dir", str(tmp_path / "run")]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert re.search(r"^ctlens: CLIP training: done in \S+ s \(CLIP training, loss \S+ 2/2\)$", out.stderr, re.M)
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["sentences"] == 1 and saved["weight_decay"] == 0.05 and saved["threads"] == 1
    assert (tmp_path / "run" / "model" / "model.safetensors").stat().st_size < 2_000_000  # frozen MiniLM left out
    with open(tmp_path / "run" / "metrics.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)][-1] == 2
