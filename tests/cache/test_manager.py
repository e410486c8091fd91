"""CacheManager on a synthetic raw/: build, resume, keys, failures, stats, executors."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from synthetic_raw import BAD_STUDIES, make_raw

from ctlens.cache import CacheManager
from ctlens.cache.metadata import load_entry_volume
from ctlens.core.errors import CacheBusyError, CacheMissError
from ctlens.preprocess import prepare_for_inference


def fresh_prepare(cache: CacheManager, study: str, image: str) -> dict[str, np.ndarray]:
    """What the cache should hold, computed here without the cache's code."""
    entry = cache.metadata.get(study, image)
    vol = load_entry_volume(cache.data_dir, entry)
    s = cache.settings
    arrs, mask, _ = prepare_for_inference(vol, mode=entry.mode, spacing=s.spacing, patch=s.patch)
    out = {k: np.rint(np.clip(v, 0, 1) * 255).astype(np.uint8) for k, v in arrs.items()}
    out["mask"] = mask.astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[CacheManager, object]:
    root = make_raw(tmp_path_factory.mktemp("built"))
    cache = CacheManager(root)
    report = cache.build_cache(num_workers=1, progress=False)
    return cache, report


def test_build_reports_bad_studies_and_builds_the_rest(built: tuple[CacheManager, object]) -> None:
    cache, report = built
    failed = {f.study: f.reason for f in report.failed}
    assert failed == BAD_STUDIES
    assert all(f.detail for f in report.failed)
    assert report.built == report.total - len(BAD_STUDIES)
    stats = cache.get_cache_stats()
    assert (stats.complete, stats.failed, stats.stale, stats.missing) == (report.built, len(BAD_STUDIES), 0, 0)
    assert {f.study: f.reason for f in stats.failures} == BAD_STUDIES
    assert stats.by_mode == {"ct": report.built - 1, "mri": 1}
    assert stats.bytes == sum(p.stat().st_size for p in cache.processed.rglob("*.npy"))


def test_entries_load_mmap_and_match_a_fresh_prepare(built: tuple[CacheManager, object]) -> None:
    cache, _ = built
    for entry in cache.complete_entries():
        arrays = cache.load_image(entry.study, entry.image)
        expected = fresh_prepare(cache, entry.study, entry.image)
        assert sorted(arrays) == sorted(expected)
        for name, arr in arrays.items():
            assert arr.dtype == np.uint8 and not arr.flags.writeable  # a read-only memory map of the file
            assert not arr.flags.owndata
            np.testing.assert_array_equal(arr, np.load(cache.array_path(entry.study, entry.image, name)))
            assert all(n % p == 0 for n, p in zip(arr.shape, (4, 16, 16), strict=True))
            np.testing.assert_array_equal(arr, expected[name], err_msg=f"{entry.name} {name}")
        assert cache.verify(entry.study, entry.image)
    assert sorted(cache.load_image("mr_case", "mr_case")) == ["mask", "mri"]


def test_failed_or_unknown_entry_raises_cache_miss(built: tuple[CacheManager, object]) -> None:
    cache, _ = built
    with pytest.raises(CacheMissError, match="one slice"):
        cache.load_image("one_slice", "dicom")
    with pytest.raises(CacheMissError, match="not built"):
        cache.load_image("nope", "nothing")


def test_resume_skips_done_and_a_changed_source_rebuilds_only_itself(data_copy: Callable[[], Path]) -> None:
    root = data_copy()
    cache = CacheManager(root)
    first = cache.build_cache(num_workers=1, progress=False)
    manifests = {p: p.stat().st_mtime_ns for p in cache.processed.glob("*/*.json")}
    again = cache.build_cache(num_workers=1, progress=False)
    assert (again.built, again.skipped, len(again.failed)) == (0, first.total, len(BAD_STUDIES))
    src = root / "raw" / "ct_01" / "scan.nii.gz"
    import nibabel as nib

    img = nib.load(src)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj) + np.int16(5), img.affine), src)
    assert CacheManager(root).get_cache_stats().stale_entries == ["ct_01/scan"]
    third = cache.build_cache(num_workers=1, progress=False)
    assert third.built == 1
    changed = [p.parent.name for p, t in manifests.items() if p.stat().st_mtime_ns != t]
    assert changed == ["ct_01"]


def test_changed_setting_makes_entries_stale_and_rebuilds(data_copy: Callable[[], Path]) -> None:
    root = data_copy()
    fine = CacheManager(root)
    fine.build_cache(num_workers=1, progress=False)
    coarse = CacheManager(root, spacing=(4, 2, 2))
    stats = coarse.get_cache_stats()
    assert stats.complete == 0 and stats.stale == stats.entries  # failures are keyed too
    report = coarse.build_cache(num_workers=1, progress=False)
    assert report.built == stats.entries - len(BAD_STUDIES)
    arr = coarse.load_image("ct_00", "scan")["brain"]
    np.testing.assert_array_equal(arr, fresh_prepare(coarse, "ct_00", "scan")["brain"])
    assert arr.shape[1:] == (32, 32) and fine.get_cache_stats().stale == stats.entries


def test_a_second_build_while_one_runs_is_refused(data_copy: Callable[[], Path]) -> None:
    root = data_copy()
    cache = CacheManager(root)
    cache.processed.mkdir(parents=True)
    with open(cache.processed / ".build.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CacheBusyError, match="another build"):
            cache.build_cache(num_workers=1, progress=False)


@pytest.mark.parametrize("executor", ["thread"])  # the process pool runs in test_interrupted_build.py
def test_pool_executors_write_the_same_entries(executor: str, tmp_path: Path) -> None:
    root = make_raw(tmp_path, n_ct=2, bad=False)
    cache = CacheManager(root)
    report = cache.build_cache(num_workers=2, executor=executor, progress=False)  # type: ignore[arg-type]
    assert report.built == report.total and not report.failed
    for entry in cache.complete_entries():
        expected = fresh_prepare(cache, entry.study, entry.image)
        for name, arr in cache.load_image(entry.study, entry.image).items():
            np.testing.assert_array_equal(arr, expected[name])


def test_ray_executor_runs_the_same_function(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed")
    root = make_raw(tmp_path, n_ct=2, bad=True)
    start = time.perf_counter()
    try:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"a local Ray instance could not start here: {exc}")
    try:
        cache = CacheManager(root)
        report = cache.build_cache(num_workers=1, executor="ray", progress=False)
        assert {f.study for f in report.failed} == set(BAD_STUDIES)
        assert report.built == report.total - len(BAD_STUDIES)
        expected = fresh_prepare(cache, "ct_01", "scan")
        np.testing.assert_array_equal(cache.load_image("ct_01", "scan")["bone"], expected["bone"])
    finally:
        ray.shutdown()
    print(f"ray build {time.perf_counter() - start:.1f} s, pid {os.getpid()}")
