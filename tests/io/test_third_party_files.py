"""Files written by other tools (pydicom's bundled test data): big-endian, implicit VR and bare data sets."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from ctlens.core.errors import CorruptFileError
from ctlens.io import load
from ctlens.io.dicom_magic import is_raw_dataset, looks_like_dicom


def _pydicom_values(name: str) -> np.ndarray:
    ds = pydicom.dcmread(get_testdata_file(name))
    return ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm"])
def test_encodings_decode_like_pydicom(name: str) -> None:
    vol = load(get_testdata_file(name))
    assert vol.shape == (1, 64, 64)
    np.testing.assert_array_equal(vol.array[0], _pydicom_values(name))
    np.testing.assert_array_equal(vol.array[0], _pydicom_values("MR_small.dcm"))  # the same image, re-encoded


@pytest.mark.parametrize("name", ["ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"])
def test_bare_data_sets_from_another_writer_are_recognised(name: str) -> None:
    """Bare RT plans: recognised as DICOM (not "not a DICOM file"), then refused for what they are."""
    path = get_testdata_file(name)
    head = open(path, "rb").read(4096)
    assert head[128:132] != b"DICM" and is_raw_dataset(head) and looks_like_dicom(head)
    with pytest.raises(CorruptFileError, match="RTPLAN"):
        load(path)
