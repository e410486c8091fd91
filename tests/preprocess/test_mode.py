"""CT / MR detection from the modality tag or the intensities."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.preprocess import detect_mode


def test_modality_tag_decides() -> None:
    mr_looking = np.full((2, 4, 4), 300.0)
    assert detect_mode(Volume(mr_looking, modality="CT")) == ("ct", "modality tag 'CT'")
    assert detect_mode(Volume(np.full((2, 4, 4), -1000.0), modality="mr"))[0] == "mri"


def test_guessed_tag_is_checked_against_intensities(caplog: pytest.LogCaptureFixture) -> None:
    mr = np.random.default_rng(0).uniform(0, 800, (4, 16, 16))
    vol = Volume(mr, modality="CT", meta={"modality_source": "heuristic"})
    with caplog.at_level(logging.WARNING):
        mode, reason = detect_mode(vol)
    assert mode == "mri" and "guess" in reason and "guessed" in caplog.text


def test_intensity_rules() -> None:
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 20, (8, 32, 32))
    ct[:, :8] = rng.normal(-1000, 20, (8, 8, 32))
    ct[0, 0, 0] = 1500
    assert detect_mode(Volume(ct, modality="OT"))[0] == "ct"
    soft_only = ct.copy()
    soft_only[0, 0, 0] = 60
    assert detect_mode(soft_only)[0] == "ct"  # 25 % air at -1000 HU is unmistakable
    assert detect_mode(rng.uniform(0, 4000, (8, 32, 32)))[0] == "mri"
    assert detect_mode(rng.normal(100, 50, (8, 32, 32)))[0] == "mri"  # a few negatives are fine for MR
    mode, reason = detect_mode(np.full((2, 2, 2), np.nan))
    assert mode == "mri" and "no finite" in reason


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "expected"), [("ct_3mm", "ct"), ("mr_3mm", "mri")])
def test_real_files_without_modality(ts_volume, name: str, expected: str) -> None:
    vol = ts_volume(name)
    assert vol.modality == ""
    mode, reason = detect_mode(vol)
    assert mode == expected, reason
    assert "intensity" in reason
