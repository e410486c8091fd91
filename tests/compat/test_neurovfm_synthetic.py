"""Seed 002 (neurovfm) compat layer on synthetic data: every orientation and axis order, the seed's conventions
(``[1, D, H, W]`` volumes, per-token mask 1 = background, ``z_dim`` in SimpleITK order), the dataset's item keys and
default-collate batching, the labels formats, the study-aware sampler, and the cache's saved ``metadata.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from neurovfm_phantom import grid_size, write_phantom
from torch.utils.data import DataLoader

from ctlens.compat.neurovfm.data import CacheManager, DatasetMetadata, load_image, prepare_for_inference
from ctlens.compat.neurovfm.datasets import DEFAULT_CROP, ImageDataset, StudyAwareBatchSampler
from ctlens.core.errors import CorruptFileError

ITEM_KEYS = {"img", "coords", "filtered", "size", "path", "label", "study", "mode", "window"}
# (voxel axes, shape, spacing, view, the seed's z_dim of the slice axis in SimpleITK order of the RPI image)
ORIENTATIONS = [
    ("RAS", (100, 110, 17), (1.3, 1.3, 5.0), "axial", 2),
    ("LPS", (100, 110, 17), (1.3, 1.3, 5.0), "axial", 2),
    ("SRA", (17, 100, 110), (5.0, 1.3, 1.3), "axial", 2),
    ("RSA", (100, 70, 25), (1.3, 1.3, 5.0), "coronal", 1),
    ("ASR", (110, 70, 21), (1.3, 1.3, 5.0), "sagittal", 0),
]


def _expected_shape(fov: dict[str, float], view: str) -> tuple[int, int, int]:
    """The model grid (D, H, W): slice axis first at 4 mm, the others at 1 mm in RPI order, padded to (4, 16, 16)."""
    order = {"axial": ("SI", "AP", "RL"), "coronal": ("AP", "SI", "RL"), "sagittal": ("RL", "AP", "SI")}[view]
    return (grid_size(fov[order[0]], 4.0, 4), grid_size(fov[order[1]], 1.0, 16), grid_size(fov[order[2]], 1.0, 16))


@pytest.mark.parametrize(("axes", "shape", "spacing", "view", "z_dim"), ORIENTATIONS)
def test_prepare_for_inference_in_every_orientation(tmp_path, axes, shape, spacing, view, z_dim) -> None:
    path = tmp_path / "head.nii.gz"
    fov = write_phantom(path, axes, shape, spacing)
    img_arrs, mask, got_view = prepare_for_inference(load_image(path), mode="ct")
    d, h, w = _expected_shape(fov, view)
    assert got_view == view
    assert [tuple(a.shape) for a in img_arrs] == [(1, d, h, w)] * 3
    assert all(a.dtype == torch.float32 for a in img_arrs)
    grid = (d // 4, h // 16, w // 16)
    assert mask.dtype == torch.uint8 and tuple(mask.shape) == (int(np.prod(grid)),)
    # window order brain (W80/L40), blood (W200/L80), bone (W2800/L600): brain tissue (40 HU) at the centre
    centre = (d // 2, h // 2, w // 2)
    values = [float(a[0][centre]) for a in img_arrs]
    assert values == pytest.approx([0.5, 0.3, 0.3], abs=0.02)
    # 1 = background: the centre token (brain) is 0, the corner token (air) is 1
    flags = mask.reshape(grid)
    assert int(flags[grid[0] // 2, grid[1] // 2, grid[2] // 2]) == 0 and int(flags[0, 0, 0]) == 1
    # the same result without preprocessing at load time, from SimpleITK.ReadImage, and with the slice axis named
    for other in (
        prepare_for_inference(load_image(path, preprocess=False), mode="ct"),
        prepare_for_inference(sitk.ReadImage(str(path)), "ct"),
        prepare_for_inference(load_image(path), "ct", z_dim=z_dim),
    ):
        assert [tuple(a.shape) for a in other[0]] == [(1, d, h, w)] * 3
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(other[0], img_arrs, strict=True))
        assert torch.equal(other[1], mask) and other[2] == view


def test_z_dim_counts_simpleitk_axes(tmp_path) -> None:
    """The seed's z_dim names the slice axis in SimpleITK (x, y, z) order: 2 forces axial on a coronal volume."""
    path = tmp_path / "coronal.nii.gz"
    fov = write_phantom(path, "RSA", (100, 70, 25), (1.3, 1.3, 5.0))
    img_arrs, mask, view = prepare_for_inference(load_image(path, preprocess=False), "ct", z_dim=2)
    assert view == "coronal"  # the acquisition plane, whatever the model grid
    assert tuple(img_arrs[0].shape[1:]) == _expected_shape(fov, "axial")
    img_arrs, _, _ = prepare_for_inference(load_image(path, preprocess=False), "ct", z_dim=0)
    assert tuple(img_arrs[0].shape[1:]) == _expected_shape(fov, "sagittal")
    with pytest.raises(ValueError, match="z_dim"):
        prepare_for_inference(load_image(path), "ct", z_dim=3)


def test_mri_mode_and_refusals(tmp_path) -> None:
    path = tmp_path / "t1.nii.gz"
    write_phantom(path, "LPS", (60, 70, 12), (2.0, 2.0, 5.0), mr=True)
    img_arrs, mask, view = prepare_for_inference(load_image(path), mode="mri")
    assert len(img_arrs) == 1 and float(img_arrs[0].max()) == pytest.approx(1.0) and float(img_arrs[0].min()) == 0.0
    assert 0 < int((mask == 0).sum()) < mask.numel()
    assert prepare_for_inference(sitk.Image(64, 64, sitk.sitkInt16), "ct") is None  # a 2-D image
    assert prepare_for_inference(sitk.Image(64, 64, 1, sitk.sitkInt16), "ct") is None  # a single slice
    with pytest.raises(TypeError, match="SimpleITK.Image"):
        prepare_for_inference(np.zeros((8, 32, 32)), "ct")
    with pytest.raises(ValueError, match="mode"):
        prepare_for_inference(load_image(path), "pet")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data folder of CT studies of several sizes and orientations (one with two images) and an MR study, cached."""
    root = tmp_path_factory.mktemp("nvfm") / "data"
    layout = {
        "small": [("ct.nii.gz", "LPS", (40, 44, 6), (1.5, 1.5, 5.0), False)],
        "big": [("ct.nii.gz", "RSA", (100, 70, 9), (1.3, 1.3, 5.0), False)],
        "pair": [
            ("a.nii.gz", "RAS", (60, 70, 8), (1.5, 1.5, 5.0), False),
            ("b.nii.gz", "ASR", (80, 50, 8), (1.3, 1.3, 5.0), False),
        ],
        "mr": [("T1.nii.gz", "LPS", (50, 60, 8), (2.0, 2.0, 5.0), True)],
    }
    for study, images in layout.items():
        (root / "raw" / study).mkdir(parents=True)
        for name, axes, shape, spacing, mr in images:
            write_phantom(root / "raw" / study / name, axes, shape, spacing, mr=mr)
    meta = DatasetMetadata.from_directory(root, {"mr": "mri", "small": "ct", "big": "ct", "pair": "ct"})
    meta.save(root / "metadata.json")
    report = CacheManager(root).build_cache(num_workers=1, progress=False)
    assert report.built == 5 and not report.failed
    (root / "labels.csv").write_text("study_id,label\nsmall,0\nbig,2\npair,7\nmr,2\n")
    return root


def test_cache_file_names_and_load_image(data_root) -> None:
    for study, image in (("small", "ct"), ("pair", "a"), ("pair", "b")):
        for channel in ("brain", "blood", "bone", "mask"):
            assert (data_root / "processed" / study / f"{image}_{channel}.npy").is_file()
    cached = CacheManager(data_root).load_image("pair", "b")
    direct = prepare_for_inference(load_image(data_root / "raw" / "pair" / "b.nii.gz"), "ct")
    for a, b in zip(cached[0], direct[0], strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) <= 0.5 / 255 + 1e-6  # uint8 cache
    assert torch.equal(cached[1], direct[1]) and cached[2] == direct[2] == "sagittal"


def test_cache_reads_the_saved_metadata(tmp_path) -> None:
    """Modes come from <data_dir>/metadata.json: a CT saved as 'mri' is cached as MR; a bad file is named."""
    (tmp_path / "raw" / "s").mkdir(parents=True)
    write_phantom(tmp_path / "raw" / "s" / "x.nii.gz", "LPS", (40, 40, 6), (1.5, 1.5, 5.0))
    DatasetMetadata.from_directory(tmp_path, {"s": "mri"}).save(tmp_path / "metadata.json")
    CacheManager(tmp_path).build_cache(num_workers=1, progress=False)
    assert (tmp_path / "processed" / "s" / "x_mri.npy").is_file()
    assert CacheManager(tmp_path).get_cache_stats().by_mode == {"mri": 1}
    (tmp_path / "metadata.json").write_text(json.dumps([1, 2]))
    with pytest.raises(CorruptFileError, match="metadata.json"):
        CacheManager(tmp_path)


def test_random_crop_gives_fixed_size_items_for_the_default_collate(data_root) -> None:
    torch.manual_seed(0)
    dataset = ImageDataset(data_root, use_cache=True, random_crop=True, augment=True)
    n = int(np.prod(np.array(DEFAULT_CROP) // (4, 16, 16)))
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset), shuffle=True)))
    assert set(batch) == ITEM_KEYS
    assert tuple(batch["img"].shape) == (len(dataset), n, 1024)
    assert tuple(batch["coords"].shape) == (len(dataset), n, 3) and tuple(batch["filtered"].shape) == (len(dataset), n)
    assert batch["size"].tolist() == [[d // p for d, p in zip(DEFAULT_CROP, (4, 16, 16), strict=True)]] * len(dataset)
    assert all(Path(p).is_file() for p in batch["path"])
    # every phantom is smaller than the crop: the padding is flagged background and holds zeros
    assert bool(batch["filtered"].any(1).all()) and float(batch["img"][batch["filtered"]].sum()) >= 0.0
    small = ImageDataset(data_root, random_crop=(8, 32, 32), ct_window_probs=[1, 0, 0])
    item = small[0]
    assert tuple(item["img"].shape) == (2 * 2 * 2, 1024) and item["size"].tolist() == [2, 2, 2]
    assert {small[i]["window"] for i in range(len(small)) if small[i]["mode"] == "ct"} == {"brain"}
    with pytest.raises(ValueError, match="random_crop"):
        ImageDataset(data_root, random_crop=(5, 32, 32))


def test_without_random_crop_items_are_padded_to_the_largest(data_root) -> None:
    dataset = ImageDataset(data_root)
    cache = CacheManager(data_root)
    shapes = [tuple(cache.load_image(e.study, e.image)[0][0].shape[1:]) for e in dataset.entries]
    grid = np.max(shapes, axis=0) // (4, 16, 16)
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    assert tuple(batch["img"].shape) == (len(dataset), int(np.prod(grid)), 1024)
    for i, entry in enumerate(dataset.entries):
        own = cache.load_image(entry.study, entry.image)[1]
        assert int((~batch["filtered"][i]).sum()) == int((own == 0).sum())
    volumes = next(iter(DataLoader(ImageDataset(data_root, tokenize=False), batch_size=2)))["img"]
    assert tuple(volumes.shape) == (2, 1, *(grid * (4, 16, 16)))
    assert {w for w, m in zip(batch["window"], batch["mode"], strict=True) if m == "mri"} == {"mri"}
    # on the fly the sizes are not known in advance: items keep their own size (batch_size=1 or collate_tokens)
    fly = ImageDataset(data_root, use_cache=False)
    sizes = {tuple(fly[i]["img"].shape) for i in range(len(fly))}
    assert len(sizes) > 1 and all(s[1] == 1024 for s in sizes)


def test_study_labels_formats(data_root, tmp_path) -> None:
    dataset = ImageDataset(data_root, study_labels=data_root / "labels.csv")
    got = {dataset[i]["study"]: int(dataset[i]["label"]) for i in range(len(dataset))}
    assert got == {"small": 0, "big": 2, "pair": 7, "mr": 2}  # integer classes keep their values
    wide = tmp_path / "wide.csv"
    wide.write_text("study_id,bleed,fracture\nsmall,1,0\npair,0,1\n")
    multi = ImageDataset(data_root, study_labels=wide)
    assert sorted(multi.studies) == ["pair", "pair", "small"]  # images of unlabelled studies are left out
    assert {multi[i]["study"]: multi[i]["label"].tolist() for i in range(len(multi))} == {
        "small": [1.0, 0.0],
        "pair": [0.0, 1.0],
    }
    single = tmp_path / "labels.json"
    single.write_text(json.dumps({"small": 0, "big": 1, "pair": 1, "mr": 0}))
    binary = ImageDataset(data_root, study_labels=single)
    assert {binary[i]["study"]: float(binary[i]["label"]) for i in range(len(binary))}["big"] == 1.0
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    with pytest.raises(CorruptFileError, match="bad.csv"):
        ImageDataset(data_root, study_labels=bad)


def test_study_aware_batches_hold_one_whole_study(data_root) -> None:
    dataset = ImageDataset(data_root)
    sampler = StudyAwareBatchSampler(dataset, batch_size=8, shuffle=True, seed=42)
    batches = list(DataLoader(dataset, batch_sampler=sampler))
    assert sorted(b["study"][0] for b in batches) == sorted(set(dataset.studies))
    for b in batches:
        assert len(set(b["study"])) == 1 and len(b["study"]) == dataset.studies.count(b["study"][0])
        assert b["img"].ndim == 3 and b["img"].shape[2] == 1024
    sampler.set_epoch(1)
    ranks = [StudyAwareBatchSampler(dataset, 8, seed=42, num_replicas=2, rank=r, even_batches=False) for r in (0, 1)]
    seen = [sorted(dataset.studies[i] for b in s for i in b) for s in ranks]
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == sorted(dataset.studies)
