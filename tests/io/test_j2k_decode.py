"""JPEG 2000 series through the parallel decoder: the same HU on any number of workers, with decoder threads at
the end of the series, with HU wider than int16, and a damaged file named whatever thread decodes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless

import ctlens
from ctlens.core.errors import CorruptFileError
from ctlens.io.dicom_parse import encapsulated_frame, parse_file
from ctlens.io.j2k_plugin import decode_plane

from . import dicom_factory as fac

pytestmark = pytest.mark.skipif(not fac.can_encode(JPEG2000Lossless), reason="no JPEG 2000 encoder installed")


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize(("n_slices", "signed", "padding"), [(1, True, None), (2, False, 0), (7, True, -2000)])
def test_series_hu_equal_truth_on_any_workers(
    tmp_path: Path, workers: int, n_slices: int, signed: bool, padding: int | None
) -> None:
    """One slice alone (decoded on every thread), fewer slices than workers, more: the truth's HU and dtype."""
    truth = fac.write_ct_series(
        tmp_path,
        n_slices=n_slices,
        rows=48,
        cols=40,
        signed=signed,
        bits_stored=12 if not signed else 16,
        padding_value=padding,
        transfer_syntax=JPEG2000Lossless,
        shuffle_names=True,
    )
    vol = ctlens.load(tmp_path, workers=workers)
    assert vol.array.dtype == truth.hu.dtype == np.int16
    assert np.array_equal(vol.array, truth.hu)
    if padding is not None:
        assert (vol.array == -1024).any()


def test_decoder_threads_give_the_same_plane(tmp_path: Path) -> None:
    """OpenJPEG's own threads (the last slices of a series) decode the same stored values as one thread."""
    truth = fac.write_ct_series(tmp_path, n_slices=1, rows=96, cols=64, transfer_syntax=JPEG2000Lossless)
    parsed = parse_file(truth.paths[0])
    assert parsed is not None and parsed.pixel_offset is not None
    codestream = encapsulated_frame(truth.paths[0], parsed.pixel_offset)
    assert codestream is not None
    expected = pydicom.dcmread(truth.paths[0]).pixel_array
    for threads in (1, 2, 4):
        plane = decode_plane(codestream, 96, 64, True, 16, threads)
        assert plane is not None and plane.dtype == expected.dtype and np.array_equal(plane, expected)


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("wide", [[0], [3], [1, 4]])
def test_hu_beyond_int16_widen_to_float32_on_any_workers(tmp_path: Path, workers: int, wide: list[int]) -> None:
    """Slices whose intercept puts HU past int16 (first, middle, several): float32 with every slice's exact HU."""
    truth = fac.write_ct_series(tmp_path, n_slices=5, rows=32, cols=32, transfer_syntax=JPEG2000Lossless)
    by_z = {truth.slice_index(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in truth.paths}
    expected = truth.hu.astype(np.float32)
    for z in wide:
        ds = pydicom.dcmread(by_z[z])
        ds.RescaleIntercept = 30000
        ds.save_as(by_z[z])
        expected[z] = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + 30000
    assert expected.max() > 32767
    vol = ctlens.load(tmp_path, workers=workers, uneven="keep")
    assert vol.array.dtype == np.float32
    assert np.array_equal(vol.array, expected)


@pytest.mark.parametrize("workers", [1, 2])
def test_damaged_codestream_names_its_file_on_any_workers(tmp_path: Path, workers: int) -> None:
    """A codestream cut short in one file of the series: CorruptFileError naming that file, not a hang."""
    truth = fac.write_ct_series(tmp_path, n_slices=6, rows=64, cols=64, transfer_syntax=JPEG2000Lossless)
    bad = truth.paths[3]
    fac.truncate(bad, 0.7)
    with pytest.raises(CorruptFileError) as info:
        ctlens.load(tmp_path, workers=workers)
    assert bad.name in str(info.value)
