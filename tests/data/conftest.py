"""Fixtures for the data tests: a small built cache from the synthetic raw/ of tests/cache/synthetic_raw.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_CACHE_TESTS = Path(__file__).resolve().parents[1] / "cache"
if str(_CACHE_TESTS) not in sys.path:
    sys.path.insert(0, str(_CACHE_TESTS))

from synthetic_raw import make_raw  # noqa: E402


@pytest.fixture(scope="session")
def built_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder (3 CT NIfTI studies, a DICOM study with 3 series, an MR study) with its cache built."""
    from ctlens.cache import CacheManager

    root = make_raw(tmp_path_factory.mktemp("data_tests"), n_ct=3, shape=(64, 64, 16), bad=False)
    report = CacheManager(root).build_cache(num_workers=1, progress=False)
    assert not report.failed
    return root
