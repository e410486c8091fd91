"""The cache on the real series of ../shared/data (linked, never copied), with bad studies beside them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ctlens.cache import CacheManager
from shared_data import data_dir

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[CacheManager, object]:
    shared = data_dir()
    root = tmp_path_factory.mktemp("shared_cache")
    raw = root / "raw"
    raw.mkdir()
    head = shared / "dcm_qa_ct_ge" / "dicom"
    chest = shared / "lung_pet_ct_dx" / "Lung_Dx-A0002"
    ts = shared / "totalsegmentator_example"
    os.symlink(head, raw / "head_ct")
    (raw / "chest").mkdir()
    os.symlink(chest / "series_B40f_8mm", raw / "chest" / "b40f")
    os.symlink(chest / "series_B70f_8mm", raw / "chest" / "b70f")
    (raw / "both_kernels_one_folder").mkdir()  # two series mixed in one folder: two images
    for series in ("series_B40f_8mm", "series_B70f_8mm"):
        for f in sorted((chest / series).iterdir())[:6]:
            os.symlink(f, raw / "both_kernels_one_folder" / f"{series[7:11]}_{f.name}")
    os.symlink(ts / "ct_3mm.nii.gz", raw / "abdomen.nii.gz")
    (raw / "brain_mr").mkdir()
    os.symlink(ts / "mr_3mm.nii.gz", raw / "brain_mr" / "t1.nii.gz")
    (raw / "one_slice").mkdir()
    os.symlink(sorted(head.iterdir())[3], raw / "one_slice" / "IM0001.dcm")
    (raw / "empty").mkdir()
    (raw / "broken").mkdir()
    (raw / "broken" / "ct.nii.gz").write_bytes(b"\x1f\x8b" + bytes(100))
    cache = CacheManager(root)
    report = cache.build_cache(num_workers=2, executor="thread", progress=False)
    return cache, report


def test_bad_studies_are_reported_and_the_rest_built(shared_cache: tuple[CacheManager, object]) -> None:
    cache, report = shared_cache
    stats = cache.get_cache_stats()
    reasons = {f.study: f.reason for f in stats.failures}
    assert reasons == {"one_slice": "one slice", "empty": "empty", "broken": "unreadable"}
    assert stats.complete == stats.entries - 3 and stats.complete == report.built
    assert {e.study for e in cache.complete_entries()} == {
        "head_ct", "chest", "both_kernels_one_folder", "abdomen", "brain_mr"
    }  # fmt: skip
    assert len([e for e in cache.metadata if e.study == "both_kernels_one_folder"]) == 2


def test_modes_detected_without_a_mapping(shared_cache: tuple[CacheManager, object]) -> None:
    cache, _ = shared_cache
    modes = {e.name: cache.manifest(e.study, e.image)["mode"] for e in cache.complete_entries()}
    assert modes.pop("brain_mr/t1") == "mri"
    assert set(modes.values()) == {"ct"}, modes


def test_windows_and_shapes(shared_cache: tuple[CacheManager, object]) -> None:
    cache, _ = shared_cache
    for entry in cache.complete_entries():
        arrays = cache.load_image(entry.study, entry.image)
        expected = ["mask", "mri"] if entry.mode == "mri" else ["blood", "bone", "brain", "mask"]
        assert sorted(arrays) == expected
        shape = arrays["mask"].shape
        assert all(n % p == 0 for n, p in zip(shape, (4, 16, 16), strict=True)), (entry.name, shape)
        assert all(a.shape == shape and a.dtype == np.uint8 for a in arrays.values())
        assert 0.02 < arrays["mask"].mean() < 0.98, entry.name  # a body, and air around it
        if entry.mode == "ct":  # bone window: bone bright, soft tissue dark; brain window saturates bone
            assert arrays["bone"].max() > 150 and arrays["brain"].max() == 255
