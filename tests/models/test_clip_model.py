"""3D CLIP model parts: configs, per-slice input, DINOv2 loading, MiniLM offline, fusion, loss, checkpoints."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from ctlens.core.errors import InputNotFoundError
from ctlens.models.clip3d import (
    CLIP3DConfig,
    SliceEncoder,
    TextConfig,
    TextTower,
    VisionConfig,
    build_model,
    clip_loss,
    config_dir,
    hu_windows_to_unit,
    load_config,
    minilm_path,
    slices_to_backbone_input,
)
from ctlens.models.clip3d.checkpoint import load_model_checkpoint, save_model_weights

TINY_VISION = {"image_size": 16, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}


def test_every_shipped_config_parses_and_round_trips():
    names = sorted(p.stem for p in config_dir().glob("*.json"))
    assert {"ctclip-tiny", "ctclip-dinov2-small", "ctclip-dinov2-base"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name
        assert CLIP3DConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown vision"):
        CLIP3DConfig.from_dict({"vision": {"hidden": 3}})
    with pytest.raises(InputNotFoundError, match="ctclip-tiny"):
        load_config("no-such-config")


def test_slice_input_equals_slice_by_slice_reference():
    vols = torch.randint(0, 256, (2, 3, 40, 30), dtype=torch.uint8)
    out = slices_to_backbone_input(vols, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    for b in range(2):
        for d in range(3):
            grey = vols[b, d].float()[None, None] / 255.0
            small = F.interpolate(grey, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)[0]
            ref = (small.expand(3, -1, -1) - mean) / std
            torch.testing.assert_close(out[b * 3 + d], ref)


def test_window_channels_equal_per_channel_hu_windows():
    hu = torch.tensor([-1000.0, -720.0, -600.0, 60.0, 240.0, 1000.0])
    vols = torch.round((hu + 1000) / 2000 * 255).to(torch.uint8).view(1, 1, 1, 6).expand(1, 1, 6, 6).contiguous()
    windows = hu_windows_to_unit([(-1000, -600), (-160, 240), (-1000, 1000)], (-1000.0, 1000.0))
    out = slices_to_backbone_input(vols, 6, mean=(0, 0, 0), std=(1, 1, 1), windows=windows)[0, :, 0]
    stored = vols[0, 0, 0].float() / 255 * 2000 - 1000  # the HU the uint8 values stand for
    for channel, (lo, hi) in enumerate([(-1000, -600), (-160, 240), (-1000, 1000)]):
        torch.testing.assert_close(out[channel], ((stored - lo) / (hi - lo)).clamp(0, 1), atol=1e-5, rtol=0)
    assert out[0, 1] > 0.6 and out[1, 1] == 0.0  # aerated lung: bright in the lung window, black in soft tissue
    with pytest.raises(ValueError, match="per RGB channel"):
        slices_to_backbone_input(vols, 6, windows=windows[:2])


@pytest.mark.parametrize("pool", ["cls", "mean", "max", "mean_max"])
def test_slice_pooling_options(pool):
    enc = SliceEncoder(VisionConfig(**TINY_VISION, pool=pool)).eval()
    with torch.no_grad():
        feats = enc(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
    assert feats.shape == (2, 3, enc.width) and enc.width == (64 if pool == "mean_max" else 32)
    with pytest.raises(ValueError, match="vision.pool"):
        SliceEncoder(VisionConfig(**TINY_VISION, pool="median"))


def test_dinov2_weights_from_a_local_folder_else_random(tmp_path, caplog):
    from transformers import Dinov2Config, Dinov2Model

    saved = Dinov2Model(Dinov2Config(**{k: v for k, v in TINY_VISION.items()}, mlp_ratio=2))
    saved.save_pretrained(tmp_path / "dino")
    enc = SliceEncoder(VisionConfig(pretrained=str(tmp_path / "dino"), **TINY_VISION))
    assert enc.weights_source.startswith("pretrained")
    key = "embeddings.cls_token"
    torch.testing.assert_close(enc.backbone.state_dict()[key], saved.state_dict()[key])
    with caplog.at_level(logging.WARNING):
        missing = SliceEncoder(VisionConfig(pretrained="facebook/dinov2-nonexistent", **TINY_VISION))
    assert missing.weights_source == "random init" and "random init" in caplog.text


def test_frozen_backbone_and_gradient_checkpointing():
    torch.manual_seed(0)
    vols = torch.randint(0, 256, (2, 4, 20, 20), dtype=torch.uint8)
    plain = SliceEncoder(VisionConfig(**TINY_VISION))
    ckpt = SliceEncoder(VisionConfig(**TINY_VISION, grad_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    plain.train(), ckpt.train()
    out_a, out_b = plain(vols), ckpt(vols)
    torch.testing.assert_close(out_a, out_b)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    name = next(n for n, _ in plain.named_parameters() if "encoder.layer.0" in n and n.endswith("weight"))
    ga, gb = dict(plain.named_parameters())[name].grad, dict(ckpt.named_parameters())[name].grad
    assert ckpt.backbone.is_gradient_checkpointing and not plain.backbone.is_gradient_checkpointing
    assert ga is not None and ga.abs().sum() > 0
    torch.testing.assert_close(ga, gb)
    frozen = SliceEncoder(VisionConfig(**TINY_VISION, freeze=True))
    out = frozen(vols)
    assert not out.requires_grad and not any(p.requires_grad for p in frozen.parameters())


def test_minilm_loads_offline_and_embeds_like_sentence_transformers(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tower = TextTower(TextConfig()).eval()
    assert tower.weights_source == "pretrained minilm" and tower.width == 384
    texts = ["There is a large pleural effusion.", "Fluid in the pleural space.", "The bones are unremarkable."]
    with torch.no_grad():
        ours = F.normalize(tower.encode(texts), dim=-1)
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(ours, F.normalize(reference, dim=-1), atol=1e-4, rtol=1e-4)
    sims = ours @ ours.T
    assert sims[0, 1] > sims[0, 2] + 0.1  # the pretrained weights know that effusion is pleural fluid


def test_text_model_folder_missing_is_a_clear_error(tmp_path):
    with pytest.raises(InputNotFoundError, match="text model not found offline"):
        TextTower(TextConfig(model=str(tmp_path / "nothing")))


def test_clip_loss_is_symmetric_cross_entropy_with_gradients():
    torch.manual_seed(1)
    img = F.normalize(torch.randn(6, 8, requires_grad=True), dim=-1)
    txt = F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * img @ txt.T
    ref = 0.5 * (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6)))
    loss = clip_loss(img, txt, scale)
    torch.testing.assert_close(loss, ref)
    loss.backward()


def test_tiny_model_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model(load_config("ctclip-tiny")).eval()
    vols = torch.randint(0, 256, (2, 32, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        before = model.encode_volume(vols), model.encode_text(["No nodule.", "Cardiomegaly."])
    save_model_weights(model, tmp_path / "ck")
    again = load_model_checkpoint(tmp_path / "ck")
    with torch.no_grad():
        after = again.encode_volume(vols), again.encode_text(["No nodule.", "Cardiomegaly."])
    torch.testing.assert_close(before, after)
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-3)
