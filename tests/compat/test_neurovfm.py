"""Seed 002 (neurovfm data pipeline): the seed's quick-start and API-reference code blocks run as written (import
lines and the ``/data`` / ``scan.nii.gz`` paths changed only) on the shared images, and give what the seed documents.

The data folder is the seed's layout built from the shared data (an MR ``T1.nii.gz``, a head CT when there is one,
another CT series when there is one); the inference quick start runs on every shared image.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from neurovfm_data import (
    ToyModel,
    seed_blocks,
    seed_data_folder,
    seed_item_keys,
    seed_labels_csv,
    shared_images,
)

pytestmark = pytest.mark.shared_data


def _tokens(vol: torch.Tensor) -> torch.Tensor:
    """``[1, D, H, W]`` -> ``[N, 1024]`` (4 x 16 x 16 patches, token grid in C order): the seed's token layout."""
    _, d, h, w = vol.shape
    t = vol.reshape(d // 4, 4, h // 16, 16, w // 16, 16).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(-1, 1024)


def check_prepared(img_arrs: list, mask: torch.Tensor, mode: str, name: str) -> None:
    """The seed's volume format, per-token mask and its convention (1 = background)."""
    assert isinstance(img_arrs, list) and len(img_arrs) == (3 if mode == "ct" else 1), name
    shape = tuple(img_arrs[0].shape)
    assert len(shape) == 4 and shape[0] == 1, f"{name}: {shape}"
    _, d, h, w = shape
    assert d % 4 == 0 and h % 16 == 0 and w % 16 == 0, f"{name}: {shape}"
    for arr in img_arrs:
        assert isinstance(arr, torch.Tensor) and arr.dtype == torch.float32 and tuple(arr.shape) == shape
        assert float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0 and float(arr.max()) > 0.0, name
    n = (d // 4) * (h // 16) * (w // 16)
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.uint8 and tuple(mask.shape) == (n,), name
    assert set(mask.unique().tolist()) <= {0, 1}
    fg = mask == 0
    assert 0 < int(fg.sum()) < n, f"{name}: {int(fg.sum())} foreground tokens of {n}"
    # 1 = background: the body (foreground, 0) is brighter than what is flagged background, in every window
    for arr in img_arrs:
        tokens = _tokens(arr).mean(1)
        assert float(tokens[fg].mean()) > float(tokens[~fg].mean()), f"{name}: mask convention inverted?"


def test_seed_inference_quick_start_on_every_shared_image() -> None:
    block = seed_blocks()[0]
    assert "load_image('scan.nii.gz')" in block and "mode='mri'" in block
    model = torch.nn.Conv3d(1, 2, 3, padding=1)  # the user's model: takes one [1, D, H, W] volume
    for path, mode in shared_images():
        ns: dict = {"model": model}
        exec(block.replace("'scan.nii.gz'", repr(str(path))).replace("mode='mri'", f"mode={mode!r}"), ns)
        check_prepared(ns["img_arrs"], ns["mask"], mode, path.name)
        assert ns["view"] in ("axial", "coronal", "sagittal")
        assert tuple(ns["output"].shape) == (2, *ns["img_arrs"][0].shape[1:])


@pytest.fixture(scope="module")
def seed_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The seed's data folder, with the seed's metadata (step 1) and cache (step 2) made by the seed's own code."""
    root = tmp_path_factory.mktemp("neurovfm") / "data"
    mr = root.parent / "synthetic_mr.nii.gz"
    arr = np.zeros((40, 48, 12), np.float32)
    arr[8:32, 8:40, 2:10] = 300.0 + np.random.default_rng(0).normal(0, 20, (24, 32, 8))
    nib.save(nib.Nifti1Image(arr, np.diag([2.0, 2.0, 5.0, 1.0])), mr)
    studies = seed_data_folder(root, mr)
    (root / "labels.csv").write_text(seed_labels_csv())
    blocks = seed_blocks(root)
    exec(blocks[1], {})  # metadata: DatasetMetadata.from_directory + save
    exec(blocks[2], {})  # cache: CacheManager('/data').build_cache(num_workers=8)
    return root, studies


def test_seed_metadata_and_cache_steps(seed_root) -> None:
    from ctlens.compat.neurovfm.data import CacheManager, DatasetMetadata

    root, studies = seed_root
    meta = DatasetMetadata.load(root / "metadata.json")
    assert {e.study: e.mode for e in meta} == studies
    stats = CacheManager(root).get_cache_stats()
    assert stats.complete == len(studies) and stats.failed == 0
    for entry in meta:
        folder = root / "processed" / entry.study
        channels = ("brain", "blood", "bone", "mask") if entry.mode == "ct" else ("mri", "mask")
        for channel in channels:
            assert (folder / f"{entry.image}_{channel}.npy").is_file(), f"{entry.name}: no {channel} array"
        img_arrs, mask, view = CacheManager(root).load_image(entry.study, entry.image)
        check_prepared(img_arrs, mask, entry.mode, entry.name)


def test_seed_training_quick_start(seed_root) -> None:
    root, studies = seed_root
    ns: dict = {}
    exec(seed_blocks(root)[3], ns)  # ImageDataset('/data', use_cache=True) + DataLoader(batch_size=4): no random_crop
    dataset, batch = ns["dataset"], ns["batch"]
    assert len(dataset) == len(studies)
    assert set(batch) == set(seed_item_keys())
    img = ns["img"]
    assert img.ndim == 3 and img.shape[0] == min(4, len(dataset)) and img.shape[2] == 1024
    # without random_crop every item is padded to the largest volume; the padding is flagged background
    from ctlens.compat.neurovfm.data import CacheManager

    cache = CacheManager(root)
    prepared = {e.study: cache.load_image(e.study, e.image) for e in dataset.entries}
    grid = np.max([tuple(arrs[0].shape[1:]) for arrs, _, _ in prepared.values()], axis=0) // (4, 16, 16)
    assert img.shape[1] == int(np.prod(grid))
    assert batch["filtered"].dtype == torch.bool and tuple(batch["filtered"].shape) == tuple(img.shape[:2])
    for study, filtered in zip(batch["study"], batch["filtered"], strict=True):
        assert int((~filtered).sum()) == int((prepared[study][1] == 0).sum()), study


def test_seed_dataset_reference_examples(seed_root) -> None:
    root, studies = seed_root
    blocks = seed_blocks(root)
    ns: dict = {}
    exec(blocks[4], ns)  # imports
    exec(blocks[5], ns)  # ImageDataset(data_dir=..., ct_window_probs=..., random_crop=False, ...) + loop
    img, coords, filt = ns["img"], ns["coords"], ns["filt"]
    b, n, d = img.shape
    assert d == 1024 and tuple(coords.shape) == (b, n, 3) and tuple(filt.shape) == (b, n)
    sample = ns["dataset"][0]
    grid = sample["size"].tolist()
    assert sample["img"].shape == (int(np.prod(grid)), 1024) and sample["coords"].max(0).values.tolist() == [
        g - 1 for g in grid
    ]
    assert Path(sample["path"]).exists() and sample["mode"] in ("ct", "mri") and sample["study"] in studies
    assert sample["window"] in ("brain", "blood", "bone") if sample["mode"] == "ct" else sample["window"] == "mri"

    exec(blocks[7], ns)  # StudyAwareBatchSampler(dataset=..., batch_size=8, shuffle=True, seed=42)
    assert len(set(ns["study"])) == 1
    seen = []
    for batch in ns["loader"]:
        assert len(set(batch["study"])) == 1, batch["study"]
        seen.append(batch["study"][0])
    assert sorted(seen) == sorted(studies)


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # the seed's num_workers=4 on 2 CPUs
def test_seed_complete_training_setup(seed_root) -> None:
    root, studies = seed_root
    model = ToyModel()
    exec(seed_blocks(root)[8], {"model": model, "num_epochs": 1})
    crop_tokens = 12 * 14 * 14  # random_crop=True: DEFAULT_CROP (48, 224, 224) voxels
    image_level = [c for c in model.calls if c[2]]
    study_level = [c for c in model.calls if not c[2]]
    assert sum(c[0][0] for c in image_level) == len(studies)
    for img, coords, filtered in image_level:
        assert img[1:] == (crop_tokens, 1024) and coords == (img[0], crop_tokens, 3) and filtered == img[:2]
    assert len(study_level) == len(studies)  # one study per batch, each image of the study in it
    for img, coords, _ in study_level:
        assert img[2] == 1024 and coords == (*img[:2], 3)


def test_seed_study_labels(seed_root) -> None:
    root, studies = seed_root
    ns: dict = {}
    exec(seed_blocks(root)[9], ns)  # ImageDataset(study_labels='/data/labels.csv') + dataset[0]
    rows = list(csv.reader(io.StringIO(seed_labels_csv())))
    expected = {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}
    batch = ns["batch"]
    assert batch["study"] in expected
    assert batch["label"].tolist() == expected[batch["study"]]
    dataset = ns["dataset"]
    assert {dataset[i]["study"] for i in range(len(dataset))} == set(studies) & set(expected)
