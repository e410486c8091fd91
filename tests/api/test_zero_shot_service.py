"""Zero-shot finding probabilities in the study JSON when a CLIP checkpoint is configured (real HTTP server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dicom_factory import write_ct_series
from live_server import service_settings, start_server

from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.models.clip3d import build_model, load_config
from ctlens.models.clip3d.checkpoint import save_model_weights


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model_weights(build_model(load_config("ctclip-tiny")), tmp_path_factory.mktemp("clip") / "tiny-clip")


def _upload(client, folder: Path, seed: int) -> dict:
    write_ct_series(folder, n_slices=10, rows=32, cols=32, seed=seed, kernel="B30f")
    files = sorted(folder.iterdir())
    r = client.post("/api/analyze", files=[("files", (f"{i}.dcm", p.read_bytes())) for i, p in enumerate(files)])
    assert r.status_code == 200, r.text
    return r.json()


def test_study_has_zero_shot_probabilities_with_a_checkpoint(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("CTLENS_CLIP_CHECKPOINT", str(checkpoint))
    srv = start_server(service_settings(tmp_path / "service", clip_checkpoint=checkpoint))
    try:
        assert srv.ctx.settings.clip_checkpoint == checkpoint
        client = srv.client()
        study = _upload(client, tmp_path / "a", seed=1)
        zs = study["zero_shot"]
        assert zs["model"] == "tiny-clip" and "not a diagnosis" in zs["note"] and "warning" not in zs
        assert list(zs["probabilities"]) == list(CT_RATE_FINDINGS) and len(CT_RATE_FINDINGS) == 18
        assert all(0.0 <= p <= 1.0 for p in zs["probabilities"].values())
        assert len(set(zs["probabilities"].values())) > 1  # a real model, not a constant
        again = client.get(f"/api/studies/{study['id']}").json()
        assert again["zero_shot"] == zs  # stored with the study
        # A broken checkpoint is a warning in the result, never a 5xx.
        monkeypatch.setenv("CTLENS_CLIP_CHECKPOINT", str(tmp_path / "not-a-checkpoint"))
        broken = _upload(client, tmp_path / "b", seed=2)
        assert broken["status"] == "ready" and broken["zero_shot"]["probabilities"] is None
        assert broken["zero_shot"]["warning"]
    finally:
        srv.stop()


def test_no_zero_shot_key_without_the_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("CTLENS_CLIP_CHECKPOINT", raising=False)
    srv = start_server(service_settings(tmp_path / "service"))
    try:
        assert srv.ctx.settings.clip_checkpoint is None
        study = _upload(srv.client(), tmp_path / "a", seed=3)
        assert study["status"] == "ready" and "zero_shot" not in study
    finally:
        srv.stop()


def test_processing_without_a_checkpoint_never_imports_torch(tmp_path):
    folder = tmp_path / "dicom"
    write_ct_series(folder, n_slices=6, rows=16, cols=16)
    code = f"""
import sys
from pathlib import Path
from ctlens.api.processing import process_upload
from ctlens.api.uploads import StagedUpload
staged = StagedUpload(folder=Path({str(tmp_path)!r}), kind="dicom", input_path=Path({str(folder)!r}),
                      sha256="0" * 64, nbytes=1, n_files=6)
result = process_upload(staged, Path({str(tmp_path / "out")!r}), series=None, max_image_pixels=10**7)
assert "zero_shot" not in result, result
print("torch" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "CTLENS_CLIP_CHECKPOINT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
