"""The CLIP text transformer as the text tower: CLIPTextModel + CLIP BPE tokenizer, end-of-text pooling.

A tiny CLIP text model and a tiny byte-level BPE vocabulary are written in the test (no download).
"""

from __future__ import annotations

import json

import pytest
import torch

from ctlens.models.clip3d import TextConfig, TextTower, build_model, load_config

LETTERS = list("abcdefghijklmnopqrstuvwxyz.,")


def _tiny_clip_folder(folder, full_model: bool = False):
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(LETTERS + [c + "</w>" for c in LETTERS])}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    text_cfg = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    if full_model:
        vision = {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 16,
            "patch_size": 8,
        }
        model = CLIPModel(CLIPConfig(text_config=text_cfg.to_dict(), vision_config=vision, projection_dim=8))
    else:
        model = CLIPTextModel(text_cfg)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


@pytest.mark.parametrize("full_model", [False, True])
def test_clip_text_tower_pools_at_end_of_text(tmp_path, full_model):
    saved, tokenizer = _tiny_clip_folder(tmp_path / "clip", full_model)
    tower = TextTower(TextConfig(model=str(tmp_path / "clip"), pooling="eot", max_length=256)).eval()
    assert tower.is_clip and tower.width == 16 and tower.max_length == 77  # CLIP's context, not 256
    texts = ["no pleural effusion.", "cardiomegaly."]
    tokens = tower.tokenize(texts)
    assert (tokens["input_ids"][:, 0] == tokenizer.bos_token_id).all()
    text_model = saved.text_model if full_model else saved
    with torch.no_grad():
        feats = tower.encode(texts)
        ref = text_model(**tokenizer(texts, padding=True, return_tensors="pt")).pooler_output
        states = text_model(**tokenizer(texts, padding=True, return_tensors="pt")).last_hidden_state
    torch.testing.assert_close(feats, ref)
    ends = (tokens["input_ids"] == tokenizer.eos_token_id).int().argmax(dim=1)  # first end-of-text token
    torch.testing.assert_close(feats, states[torch.arange(2), ends])
    long = tower.tokenize(["a " * 300])
    assert long["input_ids"].shape[1] == 77 and int(long["input_ids"][0, -1]) == tokenizer.eos_token_id


def test_clip_text_tower_in_the_3d_clip_and_pooling_checked(tmp_path):
    _tiny_clip_folder(tmp_path / "clip")
    cfg = load_config("ctclip-tiny")
    cfg.text = TextConfig(model=str(tmp_path / "clip"), pooling="eot")
    model = build_model(cfg).eval()
    with torch.no_grad():
        emb = model.encode_text(["emphysema is present.", "emphysema is not present."])
    assert emb.shape == (2, cfg.embed_dim) and not torch.allclose(emb[0], emb[1])
    with pytest.raises(ValueError, match="eot"):
        TextTower(
            TextConfig(
                pretrained=False,
                pooling="eot",
                overrides={
                    "hidden_size": 16,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "intermediate_size": 32,
                },
            )
        )
