"""Every shared DICOM series: lossless .ctz round trip is bit-exact (both profiles); ROI mode keeps its bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctlens.codec import decode_slice, decode_volume, detect_roi, encode_volume

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("profile", ["compact", "fast"])
def test_lossless_bit_exact_on_all_shared_series(shared_series: dict, profile: str, tmp_path: Path) -> None:
    for name, vol in shared_series.items():
        path = tmp_path / "s.ctz"
        stats = encode_volume(vol, path, profile=profile)
        out = decode_volume(path)
        np.testing.assert_array_equal(out.array, vol.array, err_msg=name)
        np.testing.assert_allclose(out.spacing, vol.spacing)
        np.testing.assert_allclose(out.affine, vol.affine)
        assert stats.ratio > 1.8, name
        k = vol.shape[0] // 2 + 1
        np.testing.assert_array_equal(decode_slice(path, k), vol.array[k], err_msg=name)


def test_roi_mode_on_shared_series(shared_series: dict, tmp_path: Path) -> None:
    savings = {}
    for name, vol in shared_series.items():
        sub = vol.with_array(vol.array[10:14])
        lossless = encode_volume(sub, tmp_path / "l.ctz")
        stats = encode_volume(sub, tmp_path / "r.ctz", mode="roi", max_error=10)
        out = decode_volume(tmp_path / "r.ctz").array.astype(np.int32)
        mask = detect_roi(sub.array, spacing=sub.spacing)
        err = np.abs(out - sub.array)
        assert (err[mask] == 0).all() and err.max() <= 10, name
        assert 0.05 < stats.roi_coverage < 0.95, name
        assert stats.encoded_bytes <= lossless.encoded_bytes + 200, name  # never worse than lossless (per slice)
        savings[name] = 1 - stats.encoded_bytes / lossless.encoded_bytes
    assert max(savings.values()) > 0.1, savings  # body CT with soft-tissue background saves clearly
