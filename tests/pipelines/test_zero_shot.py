"""embed_volume / embed_text / zero_shot end to end: the shared real CTs and the CLI (tiny random model)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ctlens.core.errors import InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.models.clip3d import build_model, load_config
from ctlens.models.clip3d.checkpoint import save_model_weights
from ctlens.pipelines.embed import embed_text, embed_volume, prepare_volume
from ctlens.pipelines.zero_shot import zero_shot
from shared_data import data_dir


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(load_config("ctclip-tiny")).eval()


def _real_ct_inputs() -> list[Path]:
    from ctlens.io.dicom_headers import dicom_folders

    root = data_dir()
    return [*dicom_folders(root), *sorted(root.rglob("ct*.nii.gz"))]


@pytest.mark.shared_data
def test_shared_real_cts_embed_and_zero_shot(tiny_model):
    inputs = _real_ct_inputs()
    assert len(inputs) >= 4
    embeddings = []
    for path in inputs:
        probs = zero_shot(path, findings=CT_RATE_FINDINGS, model=tiny_model, load_options={"uneven": "resample"})
        assert list(probs) == list(CT_RATE_FINDINGS)
        assert all(0.0 < p < 1.0 for p in probs.values())
        from ctlens.io.loader import load

        volume = load(path, uneven="resample")
        prepared = prepare_volume(volume, tiny_model)
        assert prepared.shape == (32, 64, 64) and prepared.dtype == np.uint8 and prepared.max() > prepared.min()
        emb = embed_volume(volume, tiny_model)
        assert emb.shape == (64,) and np.isfinite(emb).all() and np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
        again = zero_shot(volume, findings=CT_RATE_FINDINGS, model=tiny_model)
        assert again == pytest.approx(probs, abs=1e-5)
        embeddings.append(emb)
    sims = np.stack(embeddings) @ np.stack(embeddings).T
    assert not np.allclose(sims, 1.0, atol=1e-6)  # different scans, different embeddings


def test_embed_text_and_prepared_arrays(tiny_model):
    texts = ["Pleural effusion is present.", "Pleural effusion is not present."]
    emb = embed_text(texts, tiny_model)
    assert emb.shape == (2, 64) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    ready = np.random.default_rng(0).integers(0, 255, (32, 64, 64), dtype=np.uint8)
    assert embed_volume(ready, tiny_model).shape == (64,)
    with pytest.raises(ValueError, match="prepared"):
        embed_volume(ready.astype(np.int16), tiny_model)


def test_zero_shot_needs_a_checkpoint():
    with pytest.raises(InputNotFoundError, match="checkpoint"):
        zero_shot(Volume(np.zeros((4, 8, 8), np.int16)))


def test_cli_zero_shot_with_a_checkpoint(tiny_model, tmp_path):
    import nibabel as nib

    from ctlens.analysis.phantoms import chest_phantom
    from ctlens.cli.main import app
    from ctlens.io import save

    save_model_weights(tiny_model, tmp_path / "ck")
    box = np.full((40, 40, 20), -1000, np.int16)
    box[8:32, 8:32, 2:18] = 40
    nib.save(nib.Nifti1Image(box, np.diag([0.8, 0.8, 2.5, 1.0])), tmp_path / "box.nii.gz")
    outside = CliRunner().invoke(
        app, ["clip", "zero-shot", str(tmp_path / "box.nii.gz"), "--checkpoint", str(tmp_path / "ck")]
    )
    assert outside.exit_code == 2 and "training domain" in outside.output  # no scores outside chest CT (#15)
    save(chest_phantom()[0], tmp_path / "ct.nii.gz")
    args = ["clip", "zero-shot", str(tmp_path / "ct.nii.gz"), "--checkpoint", str(tmp_path / "ck"), "--json"]
    result = CliRunner().invoke(app, [*args, "-f", "Emphysema", "-f", "Cardiomegaly"])
    assert result.exit_code == 0, result.output
    probs = json.loads(result.output)
    assert list(probs) == ["Emphysema", "Cardiomegaly"]
    direct = zero_shot(tmp_path / "ct.nii.gz", findings=["Emphysema", "Cardiomegaly"], checkpoint=tmp_path / "ck")
    assert [probs[k] for k in direct] == pytest.approx(list(direct.values()), abs=1e-5)
    missing = CliRunner().invoke(app, ["clip", "zero-shot", str(tmp_path / "ct.nii.gz"), "--checkpoint", "nope"])
    assert missing.exit_code == 2 and "not a CLIP3D checkpoint" in missing.output


def test_load_clip_reloads_a_checkpoint_rewritten_in_place(tmp_path):
    from ctlens.pipelines.embed import checkpoint_version, load_clip

    torch.manual_seed(1)
    first = build_model(load_config("ctclip-tiny"))
    folder = save_model_weights(first, tmp_path / "model")
    loaded = load_clip(folder, device="cpu")
    assert load_clip(folder, device="cpu") is loaded  # cached while the files are unchanged
    assert load_clip(folder / "model.safetensors", device="cpu") is loaded  # the weights file names the same folder
    torch.manual_seed(2)  # a new training run writes the same folder
    second = build_model(load_config("ctclip-tiny"))
    name, value = next((k, v) for k, v in first.state_dict().items() if not torch.equal(v, second.state_dict()[k]))
    assert torch.equal(loaded.state_dict()[name], value)
    before = checkpoint_version(folder)
    save_model_weights(second, folder)
    weights = folder / "model.safetensors"
    if checkpoint_version(folder) == before:  # same size; a coarse file-system clock may not have ticked
        os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000_000))
    assert checkpoint_version(folder) != before
    reloaded = load_clip(folder, device="cpu")
    assert reloaded is not loaded
    assert torch.equal(reloaded.state_dict()[name], second.state_dict()[name])
    assert not torch.equal(reloaded.state_dict()[name], value)
    assert load_clip(folder, device="cpu") is reloaded
