"""``read_checkpoint`` of slice-interpolation runs: the weights must be a plain file of the checkpoint's folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ctlens.core.errors import InterpolationError
from ctlens.models.ldm.checkpoint_file import read_checkpoint


def _run(tmp_path: Path, weights: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    save_file({"w": torch.arange(3.0)}, str(run / "step_1.safetensors"))
    (run / "latest.json").write_text(json.dumps({"weights": weights, "step": 1}))
    return run


def test_plain_weights_file_reads(tmp_path: Path) -> None:
    tensors, meta = read_checkpoint(_run(tmp_path, "step_1.safetensors"))
    assert meta["step"] == 1 and tensors["w"].tolist() == [0.0, 1.0, 2.0]


def test_link_inside_the_folder_reads(tmp_path: Path) -> None:
    run = _run(tmp_path, "link.safetensors")
    os.symlink(run / "step_1.safetensors", run / "link.safetensors")
    assert read_checkpoint(run)[0]["w"].shape == (3,)


@pytest.mark.parametrize("weights", ["../outside.safetensors", "/etc/passwd", "sub/step_1.safetensors", "..", ""])
def test_weights_outside_the_folder_are_refused(tmp_path: Path, weights: str) -> None:
    save_file({"w": torch.zeros(1)}, str(tmp_path / "outside.safetensors"))
    with pytest.raises(InterpolationError, match="latest.json"):
        read_checkpoint(_run(tmp_path, weights))


def test_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, "evil.safetensors")
    save_file({"w": torch.zeros(1)}, str(tmp_path / "outside.safetensors"))
    os.symlink(tmp_path / "outside.safetensors", run / "evil.safetensors")
    with pytest.raises(InterpolationError, match="checkpoint folder"):
        read_checkpoint(run)


@pytest.mark.parametrize("content", [b"\xff\xfe", b"[1, 2]", b'{"weights": 5}', b"{", b"[" * 100000])
def test_malformed_checkpoint_json(tmp_path: Path, content: bytes) -> None:
    run = _run(tmp_path, "step_1.safetensors")
    (run / "latest.json").write_bytes(content)
    with pytest.raises(InterpolationError, match="latest.json") as info:
        read_checkpoint(run)
    assert "\n" not in str(info.value)


def test_damaged_weights(tmp_path: Path) -> None:
    run = _run(tmp_path, "step_1.safetensors")
    (run / "step_1.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")
    with pytest.raises(InterpolationError, match="latest.json"):
        read_checkpoint(run)
