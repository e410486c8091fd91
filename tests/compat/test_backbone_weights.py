"""Training refuses a randomly initialised DINOv2 when the named weights are missing, and says where it looked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctlens.cli.main import app
from ctlens.models.clip3d import load_config
from ctlens.models.clip3d.visual import BackboneWeightsError, backbone_weights, require_backbone_weights


def _config(tmp_path: Path, pretrained: str | None) -> Path:
    cfg = load_config("ctclip-tiny").to_dict()
    cfg["vision"]["pretrained"] = pretrained
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_named_but_missing_weights_are_refused(tmp_path: Path) -> None:
    vision = load_config(_config(tmp_path, str(tmp_path / "dinov2"))).vision
    with pytest.raises(BackboneWeightsError, match=f"looked in directory {tmp_path / 'dinov2'}"):
        require_backbone_weights(vision)
    assert require_backbone_weights(vision, allow_random_init=True).startswith("random init (allowed)")
    (tmp_path / "dinov2").mkdir()
    (tmp_path / "dinov2" / "config.json").write_text("{}")
    assert backbone_weights(vision)[0] is False  # a config without weights is not enough
    (tmp_path / "dinov2" / "model.safetensors").write_bytes(b"x")
    assert backbone_weights(vision)[0] is True
    assert require_backbone_weights(load_config("ctclip-tiny").vision) == "random init requested by the config"


def test_hub_id_missing_from_cache_names_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found, where = backbone_weights(load_config(_config(tmp_path, "facebook/dinov2-nonexistent")).vision)
    assert not found and "Hugging Face cache" in where and "facebook/dinov2-nonexistent" in where


def test_clip_train_cli_refuses_without_the_flag(tmp_path: Path) -> None:
    cfg = _config(tmp_path, str(tmp_path / "nowhere"))
    args = ["clip", "train", "--ct", "v.h5", "--reports", "r.csv", "--model", str(cfg), "--out-dir", str(tmp_path)]
    out = CliRunner().invoke(app, args)
    assert out.exit_code != 0 and "Traceback" not in out.output
    text = out.output + (out.stderr if out.stderr_bytes is not None else "")
    assert "looked in directory" in text and "--allow-random-init" in text
    out = CliRunner().invoke(app, [*args, "--allow-random-init"])
    assert "random init (allowed)" in out.output  # past the check: it now fails on the missing data instead
    assert out.exit_code != 0
