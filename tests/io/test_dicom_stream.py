"""``iter_series_slices`` yields exactly what ``ctlens.load`` returns, slice by slice, without keeping pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_zip, write_ct_series
from pydicom.dataelem import RawDataElement
from pydicom.uid import RLELossless

import ctlens
from ctlens.core.errors import GantryTiltError, UnevenSpacingError, UnsupportedFormatError
from ctlens.io.dicom_headers import dicom_folders
from ctlens.io.dicom_stream import iter_series_slices
from shared_data import data_dir

CASES = {
    "shuffled": dict(shuffle_names=True, reverse_instance_numbers=True),
    "tilted": dict(tilt_deg=12.0),
    "uneven": dict(positions=[0, 2.5, 5, 10, 12.5, 13.5, 16]),
    "padded": dict(padding_value=-2000),
    "rle": dict(transfer_syntax=RLELossless),
}


def _same_as_load(source: Path, **options: object) -> None:
    ref = ctlens.load(source, **options)
    with iter_series_slices(source, **options) as stream:
        geometry = stream.geometry
        assert len(stream) == ref.shape[0]
        slices = list(stream)
    assert all(s.dtype == np.int16 and s.shape == ref.shape[1:] for s in slices)
    np.testing.assert_array_equal(np.stack(slices), ref.array)
    assert geometry.shape == ref.shape
    assert geometry.spacing == ref.spacing and geometry.origin == ref.origin
    np.testing.assert_array_equal(geometry.direction, ref.direction)
    assert geometry.modality == ref.modality
    assert geometry.meta == ref.meta


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("uneven", ["warn", "resample"])
def test_stream_equals_load(tmp_path: Path, case: str, uneven: str) -> None:
    write_ct_series(tmp_path / case, n_slices=9, rows=24, cols=20, **CASES[case])
    _same_as_load(tmp_path / case, uneven=uneven)


def test_zip_and_series_selection(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "two", n_slices=5, rows=16, cols=16, description="small", seed=1)
    write_ct_series(tmp_path / "two", n_slices=8, rows=16, cols=16, description="large", seed=2)
    _same_as_load(tmp_path / "two")  # the default choice, as ctlens.load
    _same_as_load(tmp_path / "two", series="small")
    zipped = make_zip(tmp_path / "two", tmp_path / "two.zip")
    stream = iter_series_slices(zipped, series="small")
    unpacked = stream.geometry.meta["n_source_files"]
    assert unpacked == 5 and len(list(stream)) == 5
    assert stream._src is None  # the unpacked copy is released once the stream is exhausted
    with pytest.raises(Exception, match="only once"):
        list(stream)


def test_policies_refuse_like_load(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "tilt", n_slices=4, rows=16, cols=16, tilt_deg=10.0)
    write_ct_series(tmp_path / "gap", rows=16, cols=16, positions=[0, 2, 4, 8])
    with pytest.raises(GantryTiltError, match="gantry tilt") as tilt:
        iter_series_slices(tmp_path / "tilt", tilt="refuse")
    assert str(tmp_path / "tilt") in str(tilt.value)
    with pytest.raises(UnevenSpacingError, match="uneven") as gap:
        iter_series_slices(tmp_path / "gap", uneven="error")
    assert str(tmp_path / "gap") in str(gap.value)


def test_non_integer_hu_is_refused_naming_the_file(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "frac", n_slices=3, rows=16, cols=16, slope=0.5, intercept=-1024.25)
    assert ctlens.load(tmp_path / "frac").array.dtype == np.float32  # the in-memory path keeps float HU
    with iter_series_slices(tmp_path / "frac") as stream, pytest.raises(UnsupportedFormatError, match="int16") as err:
        list(stream)
    assert ".dcm" in str(err.value)


def test_headers_keep_no_pixel_data(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "s", n_slices=6, rows=192, cols=192)  # pixel data > DEFER_BYTES
    with iter_series_slices(tmp_path / "s") as stream:
        refs = stream._refs
        assert sum(1 for _ in stream) == 6
    for ref in refs:  # a decoded plane's stored bytes are dropped from its kept header (or were never read)
        elem = ref.header._dict.get(0x7FE00010)
        assert elem is None or (isinstance(elem, RawDataElement) and elem.value is None)


@pytest.mark.shared_data
def test_shared_series_stream_equals_load() -> None:
    folders = dicom_folders(data_dir())
    lung = [f for f in folders if "Lung_Dx" in str(f)]
    if not lung:
        pytest.skip("Lung_Dx series not in the shared data")
    _same_as_load(lung[0])
    ge = [f for f in folders if "dcm_qa_ct_ge" in str(f)]
    if ge:  # gantry tilt and uneven spacing, resampled
        _same_as_load(ge[0], uneven="resample")
