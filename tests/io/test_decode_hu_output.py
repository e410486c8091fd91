"""decode_hu writes each plane straight into the output and releases its stored bytes; int16 widens to float32."""

from __future__ import annotations

import numpy as np
import pydicom
from dicom_factory import write_ct_series

from ctlens.io.dicom_pixels import decode_hu
from ctlens.io.dicom_reader import plan_series
from ctlens.io.dicom_source import DicomSource


def _refs(folder):
    with DicomSource(folder) as src:
        return plan_series(src, None).refs


def test_decoded_planes_equal_truth_and_stored_bytes_are_released(tmp_path):
    truth = write_ct_series(tmp_path / "s", n_slices=6, rows=24, cols=20)
    refs = _refs(tmp_path / "s")
    assert all("PixelData" in r.header for r in refs)  # deferred, still attached before decoding
    hu = decode_hu(refs, workers=1)
    assert hu.dtype == np.int16 and np.array_equal(hu, truth.hu)
    assert not any("PixelData" in r.header for r in refs)  # the bytes live only in the output now


def test_output_widens_to_float32_when_a_later_plane_does_not_fit_int16(tmp_path):
    fits = write_ct_series(tmp_path / "a", n_slices=3, seed=1)
    beyond = write_ct_series(tmp_path / "b", n_slices=2, seed=2)
    for path in beyond.paths:  # shift series b's HU beyond int16: HU = stored + 30000
        ds = pydicom.dcmread(path)
        ds.RescaleIntercept = 30000
        ds.save_as(path)
    expected_b = beyond.hu.astype(np.float32) + (30000 + 1024)
    assert fits.hu.dtype == np.int16 and expected_b.max() > 32767
    hu = decode_hu(_refs(tmp_path / "a") + _refs(tmp_path / "b"), workers=1)
    assert hu.dtype == np.float32  # widened after three int16 planes, their values kept
    np.testing.assert_array_equal(hu, np.concatenate([fits.hu.astype(np.float32), expected_b]))
