"""ImageDataset over a built cache: NeuroVFM's sample dict, window draws, crops, labels, DataLoader."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ctlens.cache import CacheManager
from ctlens.core.errors import CacheMissError
from ctlens.data import ImageDataset, StudyAwareBatchSampler, collate_padded, collate_tokens
from ctlens.preprocess import token_background_flags, tokenize, untokenize

KEYS = {"img", "coords", "filtered", "size", "path", "label", "study", "mode", "window"}


def test_sample_is_the_cached_window_tokenized(built_data_dir: Path) -> None:
    ds = ImageDataset(built_data_dir)
    cache = CacheManager(built_data_dir)
    assert len(ds) == len(cache.complete_entries()) and len(set(ds.studies)) == 5
    for i in range(len(ds)):
        s = ds[i]
        assert set(s) == KEYS
        arrays = cache.load_image(s["study"], ds.entries[i].image)
        tokens, coords = tokenize(arrays[s["window"]])
        np.testing.assert_array_equal(s["img"].numpy(), tokens.astype(np.float32) / 255)
        np.testing.assert_array_equal(s["coords"].numpy(), coords)
        np.testing.assert_array_equal(s["filtered"].numpy(), token_background_flags(arrays["mask"]).astype(bool))
        assert s["size"].tolist() == list(arrays["mask"].shape)
        assert s["img"].dtype == torch.float32 and s["img"].shape[1] == 4 * 16 * 16
        assert s["mode"] == ("mri" if s["study"] == "mr_case" else "ct")
        assert s["window"] == "mri" if s["mode"] == "mri" else s["window"] in ("brain", "blood", "bone")
        assert int(s["label"]) == -1 and (built_data_dir / s["path"]).exists()
        # background flags match the mask: a flagged token has a background voxel, an unflagged one none
        mask_tokens, _ = tokenize(arrays["mask"])
        assert (mask_tokens.min(1) == 0).tolist() == s["filtered"].tolist()


def test_ct_windows_are_drawn_with_the_given_probabilities(built_data_dir: Path) -> None:
    ds = ImageDataset(built_data_dir)
    ct = next(i for i, e in enumerate(ds.entries) if e.study == "ct_00")
    torch.manual_seed(0)
    counts = Counter(ds[ct]["window"] for _ in range(400))
    assert 0.6 < counts["brain"] / 400 < 0.8 and counts["blood"] > 25 and counts["bone"] > 25
    only_bone = ImageDataset(built_data_dir, ct_window_probs=(0, 0, 1))
    assert {only_bone[ct]["window"] for _ in range(10)} == {"bone"}
    with pytest.raises(ValueError, match="one weight"):
        ImageDataset(built_data_dir, ct_window_probs=(1, 0))


def test_random_crop_augment_and_volume_output(built_data_dir: Path) -> None:
    ds = ImageDataset(built_data_dir, random_crop=(4, 32, 32), augment=True, tokenize=False, ct_window_probs=(1, 0, 0))
    cache = CacheManager(built_data_dir)
    i = next(i for i, e in enumerate(ds.entries) if e.study == "ct_01")
    full = np.asarray(cache.load_image("ct_01", "scan")["brain"]).astype(np.float32) / 255
    torch.manual_seed(1)
    kinds = Counter()
    for _ in range(30):
        s = ds[i]
        vol = s["img"][0].numpy()
        assert s["img"].shape == (1, 4, 32, 32) and s["size"].tolist() == [4, 32, 32]
        assert s["coords"].shape == (4, 3)  # (4, 32, 32) / (4, 16, 16) tokens
        # the crop is a patch-aligned window of the cached volume, maybe flipped left-right
        match = None
        for z in range(0, full.shape[0] - 3, 4):
            for y in range(0, full.shape[1] - 31, 16):
                for x in range(0, full.shape[2] - 31, 16):
                    block = full[z : z + 4, y : y + 32, x : x + 32]
                    if np.array_equal(vol, block):
                        match = "plain"
                    elif np.array_equal(vol, block[:, :, ::-1]):
                        match = "flip"
        assert match is not None
        kinds[match] += 1
    assert kinds["plain"] > 3 and kinds["flip"] > 3
    with pytest.raises(ValueError, match="multiple of the patch"):
        ImageDataset(built_data_dir, random_crop=(4, 30, 32))


def test_on_the_fly_equals_cached(built_data_dir: Path) -> None:
    cached = ImageDataset(built_data_dir, ct_window_probs=(0, 1, 0))
    live = ImageDataset(built_data_dir, use_cache=False, ct_window_probs=(0, 1, 0))
    assert [e.name for e in cached.entries] == [e.name for e in live.entries]
    for i in (0, len(live) - 1):
        a, b = cached[i], live[i]
        assert a["window"] == b["window"]
        torch.testing.assert_close(a["img"], b["img"], rtol=0, atol=0)


def test_labels_select_studies_and_fill_the_label(built_data_dir: Path, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("study,label\nct_00,bleed\nct_01,normal\nmr_case,tumour\n")
    ds = ImageDataset(built_data_dir, study_labels=csv)
    assert sorted(set(ds.studies)) == ["ct_00", "ct_01", "mr_case"]
    got = {ds[i]["study"]: int(ds[i]["label"]) for i in range(len(ds))}
    assert got == {"ct_00": 0, "ct_01": 1, "mr_case": 2}


def test_collate_packed_and_padded_round_trip(built_data_dir: Path) -> None:
    ds = ImageDataset(built_data_dir)
    samples = [ds[i] for i in range(4)]
    packed = collate_tokens(samples)
    padded = collate_padded(samples)
    for i, s in enumerate(samples):
        lo, hi = packed["cu_seqlens"][i], packed["cu_seqlens"][i + 1]
        torch.testing.assert_close(packed["img"][lo:hi], s["img"])
        n = int(padded["attention_mask"][i].sum())
        torch.testing.assert_close(padded["img"][i, :n], s["img"])
        assert bool(padded["filtered"][i, n:].all()) and n == s["img"].shape[0]
        shape = tuple(s["size"].tolist())
        back = untokenize(packed["img"][lo:hi].numpy(), packed["coords"][lo:hi].numpy(), shape)
        assert back.shape == shape
    assert packed["size"].shape == (4, 3) and packed["study"] == [s["study"] for s in samples]


def test_dataloader_two_workers_with_study_batches(built_data_dir: Path) -> None:
    ds = ImageDataset(built_data_dir)
    sampler = StudyAwareBatchSampler(ds, batch_size=4, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_tokens, num_workers=2)
    seen = []
    for batch in loader:
        assert batch["img"].shape[0] == int(batch["cu_seqlens"][-1])
        for study in set(batch["study"]):
            assert batch["study"].count(study) == ds.studies.count(study)  # the whole study is here
        seen += batch["path"]
    assert sorted(seen) == sorted(e.source for e in ds.entries)


def test_empty_cache_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    with pytest.raises(CacheMissError, match="ctlens cache build"):
        ImageDataset(tmp_path)
