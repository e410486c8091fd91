"""Zero-shot finding probabilities in the study JSON when a CLIP checkpoint is configured (real HTTP server).

The tiny checkpoint records the default training domain, chest CT: uploads that expect scores are the synthetic
chest of :mod:`chest_upload` (issue #15; they were random 32x32 series, which the domain check calls a head).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from chest_upload import write_chest_nifti, write_head_nifti
from dicom_factory import write_ct_series
from live_server import service_settings, start_server

from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.models.clip3d import build_model, load_config
from ctlens.models.clip3d.checkpoint import save_model_weights


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model_weights(build_model(load_config("ctclip-tiny")), tmp_path_factory.mktemp("clip") / "tiny-clip")


def _post(client, path: Path) -> dict:
    """Upload a DICOM folder (its files as ``i.dcm``) or one file under its own name."""
    if path.is_dir():
        files = [(f"{i}.dcm", p.read_bytes()) for i, p in enumerate(sorted(path.iterdir()))]
    else:
        files = [(path.name, path.read_bytes())]
    r = client.post("/api/analyze", files=[("files", f) for f in files])
    assert r.status_code == 200, r.text
    return r.json()


def _upload(client, folder: Path, seed: int) -> dict:
    return _post(client, write_chest_nifti(folder / "chest.nii.gz", seed=seed))


def test_study_has_zero_shot_probabilities_with_a_checkpoint(checkpoint, tmp_path):
    srv = start_server(service_settings(tmp_path / "service", clip_checkpoint=checkpoint))
    try:
        assert srv.ctx.settings.clip_checkpoint == checkpoint
        client = srv.client()
        study = _upload(client, tmp_path / "a", seed=1)
        zs = study["zero_shot"]
        assert zs["model"] == "tiny-clip" and "not a diagnosis" in zs["note"] and "warning" not in zs
        assert len(zs["fingerprint"]) == 16
        assert list(zs["probabilities"]) == list(CT_RATE_FINDINGS) and len(CT_RATE_FINDINGS) == 18
        assert all(0.0 <= p <= 1.0 for p in zs["probabilities"].values())
        assert len(set(zs["probabilities"].values())) > 1  # a real model, not a constant
        again = client.get(f"/api/studies/{study['id']}").json()
        assert again["zero_shot"] == zs  # stored with the study
    finally:
        srv.stop()
    # A broken checkpoint is a warning in the result, never a 5xx, and names no local path.
    srv = start_server(service_settings(tmp_path / "service", clip_checkpoint=tmp_path / "not-a-checkpoint"))
    try:
        broken = _upload(srv.client(), tmp_path / "b", seed=2)
        assert broken["status"] == "ready" and broken["zero_shot"]["probabilities"] is None
        assert broken["zero_shot"]["warning"] and broken["zero_shot"]["fingerprint"] is None
        assert str(tmp_path) not in json.dumps(broken)
    finally:
        srv.stop()


def _stored_volume(srv, sha: str):
    from ctlens.api.artifacts import load_artifacts

    return load_artifacts(srv.ctx.content_dir(sha)).volume


def test_cached_study_follows_the_configured_checkpoint(checkpoint, tmp_path):
    """Same bytes uploaded again after the checkpoint setting changed: zero-shot follows it, from stored data."""
    from ctlens.pipelines.zero_shot import zero_shot

    service = tmp_path / "service"
    upload = write_chest_nifti(tmp_path / "upload" / "chest.nii.gz", seed=5)  # the same bytes each time

    def serve(clip_checkpoint):
        return start_server(service_settings(service, clip_checkpoint=clip_checkpoint))

    srv = serve(None)  # 1. analysed before any checkpoint was configured
    try:
        first = _post(srv.client(), upload)
        assert first["cached"] is False and "zero_shot" not in first
        sha = first["sha256"]
    finally:
        srv.stop()

    srv = serve(checkpoint)  # 2. the same bytes, now with a checkpoint: scores added to the cached study
    try:
        client = srv.client()
        hit = _post(client, upload)
        assert hit["cached"] is False and hit["sha256"] == sha  # a new key: not told another key sent these bytes
        zs = hit["zero_shot"]
        assert zs["model"] == "tiny-clip" and "warning" not in zs and "zero_shot" in hit["timings_s"]
        direct = zero_shot(_stored_volume(srv, sha), checkpoint=checkpoint)
        assert list(zs["probabilities"].values()) == pytest.approx(list(direct.values()), abs=1e-5)
        assert client.get(f"/api/studies/{hit['id']}").json()["zero_shot"] == zs
        assert srv.ctx.store.content(sha)["result"]["zero_shot"] == zs  # stored, not only answered
        stored_json = json.loads((srv.ctx.content_dir(sha) / "result.json").read_text())
        assert stored_json["zero_shot"] == zs
        updated_at = srv.ctx.store.content(sha)["updated"]
        assert _post(client, upload)["zero_shot"] == zs  # up to date: nothing recomputed or rewritten
        assert srv.ctx.store.content(sha)["updated"] == updated_at
    finally:
        srv.stop()

    torch.manual_seed(7)  # 3. another checkpoint (another training run in another folder)
    other = save_model_weights(build_model(load_config("ctclip-tiny")), tmp_path / "other-clip")
    srv = serve(other)
    try:
        hit_b = _post(srv.client(), upload)
        zs_b = hit_b["zero_shot"]
        assert zs_b["model"] == "other-clip" and zs_b["fingerprint"] != zs["fingerprint"]
        assert zs_b["probabilities"] != zs["probabilities"]
        assert str(tmp_path) not in json.dumps(hit_b)

        # 4. the same folder overwritten in place by a new run: a new fingerprint, the new model's scores
        torch.manual_seed(8)
        save_model_weights(build_model(load_config("ctclip-tiny")), other)
        weights = other / "model.safetensors"
        os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000_000))
        hit_c = _post(srv.client(), upload)
        zs_c = hit_c["zero_shot"]
        assert zs_c["model"] == "other-clip" and zs_c["fingerprint"] != zs_b["fingerprint"]
        direct_c = zero_shot(_stored_volume(srv, sha), checkpoint=other)
        assert list(zs_c["probabilities"].values()) == pytest.approx(list(direct_c.values()), abs=1e-5)
        assert zs_c["probabilities"] != zs_b["probabilities"]
    finally:
        srv.stop()

    srv = serve(None)  # 5. no checkpoint any more: the cached study keeps what it has
    try:
        hit_d = _post(srv.client(), upload)
        assert hit_d["status"] == "ready" and hit_d["cached"] is False and hit_d["zero_shot"] == zs_c  # new key
    finally:
        srv.stop()

    srv = serve(tmp_path / "gone-clip")  # 6. a missing checkpoint: a warning, never a failure
    try:
        hit_e = _post(srv.client(), upload)
        assert hit_e["status"] == "ready" and hit_e["zero_shot"]["probabilities"] is None
        assert hit_e["zero_shot"]["model"] == "gone-clip" and hit_e["zero_shot"]["warning"]
        assert str(tmp_path) not in json.dumps(hit_e)
    finally:
        srv.stop()


def test_a_2d_image_gets_no_zero_shot_on_a_cache_hit(checkpoint, tmp_path):
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)).save(buf, "PNG")
    srv = start_server(service_settings(tmp_path / "service", clip_checkpoint=checkpoint))
    try:
        client = srv.client()
        for cached in (False, True):
            r = client.post("/api/analyze", files=[("files", ("x.png", buf.getvalue()))])
            assert r.status_code == 200, r.text
            assert r.json()["cached"] is cached and "zero_shot" not in r.json()
    finally:
        srv.stop()


def test_no_zero_shot_key_without_the_setting(tmp_path):
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


def test_chat_sends_the_highest_zero_shot_scores_to_the_llm(checkpoint, tmp_path):
    """Through the real Anthropic SDK to a fake server on loopback: the scores go out, labelled as model output."""
    from fake_llm import start_fake
    from pydantic import SecretStr

    fake = start_fake("anthropic")
    settings = service_settings(
        tmp_path / "service",
        clip_checkpoint=checkpoint,
        anthropic_api_key=SecretStr("sk-ant-fake"),
        anthropic_base_url=fake.base_url,
    )
    srv = start_server(settings)
    try:
        client = srv.client()
        study = _upload(client, tmp_path / "a", seed=4)
        top = max(study["zero_shot"]["probabilities"].items(), key=lambda kv: kv[1])
        r = client.post(
            "/api/chat",
            data={"message": "What do the model scores say?", "study_id": study["id"], "provider": "anthropic"},
        )
        assert r.status_code == 200, r.text
        sent = fake.requests[-1].body.decode()
        assert "Zero-shot CLIP scores (tiny-clip; model output, not a diagnosis)" in sent
        assert f"{top[0]} {top[1]:.2f}" in sent
    finally:
        srv.stop()
        fake.stop()


def test_out_of_domain_uploads_get_a_warning_and_no_scores(checkpoint, tmp_path):
    """A chest checkpoint gives a head CT no scores but a warning naming why; an MR upload gets no scores either
    (the service runs zero-shot for CT only)."""
    import numpy as np

    from ctlens.analysis.phantoms import head_phantom
    from ctlens.io import save

    srv = start_server(service_settings(tmp_path / "service", clip_checkpoint=checkpoint))
    try:
        client = srv.client()
        head = _post(client, write_head_nifti(tmp_path / "head" / "head.nii.gz"))
        zs = head["zero_shot"]
        assert head["status"] == "ready" and zs["probabilities"] is None and zs["model"] == "tiny-clip"
        assert "body region head" in zs["warning"] and "chest CT" in zs["warning"], zs
        assert zs["trained_on"] == {"body_regions": ["chest"], "modality": "CT"}
        assert client.get(f"/api/studies/{head['id']}").json()["zero_shot"] == zs  # stored with the study
        assert _post(client, tmp_path / "head" / "head.nii.gz")["zero_shot"] == zs  # a cache hit keeps it

        mr_vol = head_phantom()[0]
        mr = mr_vol.with_array(np.clip(mr_vol.array.astype(np.int32) + 1000, 0, 1200).astype(np.int16))
        mr.modality = "MR"
        (tmp_path / "mr").mkdir()
        save(mr, tmp_path / "mr" / "mr.nii.gz")
        study = _post(client, tmp_path / "mr" / "mr.nii.gz")
        assert study["status"] == "ready" and study["modality"] == "MR"
        assert study["zero_shot"]["probabilities"] is None and "MR" in study["zero_shot"]["warning"], study
        assert str(tmp_path) not in json.dumps([head, study])
    finally:
        srv.stop()


def test_zero_shot_findings_checks_the_modality(checkpoint):
    """The service function itself: an MR volume (tag and intensities) gets a warning and no scores."""
    from ctlens.analysis.phantoms import chest_phantom
    from ctlens.api.services import zero_shot_findings

    chest = chest_phantom(noise_hu=10.0)[0]
    assert list(zero_shot_findings(chest, checkpoint)["probabilities"]) == list(CT_RATE_FINDINGS)
    mr = chest.with_array((chest.array.astype("int32") + 1000).clip(0, None).astype("int16"))
    mr.modality = "MR"
    out = zero_shot_findings(mr, checkpoint)
    assert out["probabilities"] is None and "not CT" in out["warning"] and "chest CT" in out["warning"], out
