"""#23 reader rules without a peer: volume selection errors, localizer words, CT padding vs MR padding, broken
mosaics, deflated data sets under the decompression budget, labels without PHI, annotations on resampled volumes."""

from __future__ import annotations

from pathlib import Path

import dicom_factory as fac
import mr_factory as mf
import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

import ctlens
from ctlens.core.errors import CTLensError, SeriesSelectionError
from ctlens.io import list_series, load_volumes, slice_index_for_sop
from ctlens.io.decompress_budget import Budget, BudgetExceeded
from ctlens.io.dicom_deflate import check_deflated


def test_volume_out_of_range_is_one_clear_error(tmp_path: Path) -> None:
    mf.write_mr_series(tmp_path, [{"AcquisitionNumber": v + 1} for v in range(2)])
    for bad in (2, -1, "1", True):
        with pytest.raises(SeriesSelectionError) as err:
            ctlens.load(tmp_path, volume=bad)
        assert "holds 2" in str(err.value) and tmp_path.name in str(err.value) and "\n" not in str(err.value)


def test_default_read_of_a_4d_series_says_so(tmp_path: Path) -> None:
    truths = mf.write_mr_series(tmp_path, [{"TemporalPositionIdentifier": v + 1} for v in range(3)])
    vol = ctlens.load(tmp_path)
    assert np.array_equal(vol.array, truths[0].hu) and vol.meta["volume_index"] == 0
    assert any("3 volumes" in w and "volume=k" in w for w in vol.meta["warnings"])
    assert list_series(tmp_path)[0].label().endswith(", 3 volumes")


def test_ct_acquisitions_at_the_same_positions_stay_entries(tmp_path: Path) -> None:
    """CT contrast phases are read one at a time (#14); the same layout in MR is one 4-D entry (#23)."""
    fac.write_acquisitions(tmp_path, [[0.0, 2.5, 5.0]] * 2, rows=8, cols=8)
    assert [(i.part, i.n_volumes) for i in list_series(tmp_path)] == [("acq 1", 1), ("acq 2", 1)]


@pytest.mark.parametrize("description", ["3-Plane Loc", "AAHead_Scout_32ch", "Survey", "localizer"])
def test_localizer_descriptions_are_dropped(tmp_path: Path, description: str) -> None:
    mf.write_mr_series(tmp_path, [{"SeriesNumber": 1}], description=description, prefix="LOC", n_slices=3)
    (t1,) = mf.write_mr_series(tmp_path, [{"SeriesNumber": 2}], description="t1 mprage", prefix="T1")
    assert [i.description for i in list_series(tmp_path)] == ["t1 mprage"]
    assert np.array_equal(ctlens.load(tmp_path).array, t1.hu)


def test_only_localizers_are_still_listed(tmp_path: Path) -> None:
    mf.write_mr_series(tmp_path, [{}], description="3-Plane Loc", n_slices=3)
    infos = list_series(tmp_path)
    assert len(infos) == 1 and infos[0].n_slices == 3


def test_ct_padding_still_becomes_air(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, n_slices=3, rows=16, cols=16, padding_value=-2000)
    vol = ctlens.load(tmp_path)
    assert np.array_equal(vol.array, truth.hu) and (vol.array == -1024).any()
    assert vol.meta["pixel_padding_value"] == -2000 and vol.meta["padding_as_air"] is True


def test_mosaic_without_csa_count_is_refused_by_name(tmp_path: Path) -> None:
    (truth,) = mf.write_mosaic_series(tmp_path, 1)
    ds = pydicom.dcmread(truth.paths[0])
    del ds[0x00291010]
    ds.save_as(truth.paths[0])
    with pytest.raises(CTLensError) as err:
        ctlens.load(tmp_path)
    assert "NumberOfImagesInMosaic" in str(err.value) and truth.paths[0].name in str(err.value)


def _deflated(path: Path, ds: pydicom.Dataset) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_deflated_series_reads_like_the_plain_one(tmp_path: Path) -> None:
    truths = mf.write_mr_series(tmp_path / "plain", [{}], n_slices=3)
    for path in truths[0].paths:
        _deflated(tmp_path / "deflated" / path.name, pydicom.dcmread(path))
    assert check_deflated(next((tmp_path / "deflated").iterdir()), "x.dcm") > 0
    assert np.array_equal(ctlens.load(tmp_path / "deflated").array, truths[0].hu)


def test_deflate_bomb_is_refused_while_inflating(tmp_path: Path) -> None:
    (truth,) = mf.write_mr_series(tmp_path / "src", [{}], n_slices=1, rows=2048, cols=2048)
    ds = pydicom.dcmread(truth.paths[0])
    ds.PixelData = bytes(len(ds.PixelData))  # 8 MiB of zeros: deflates about 1000x
    bomb = _deflated(tmp_path / "bomb" / "IM0001", ds)
    compressed = bomb.stat().st_size
    assert compressed < 64 * 1024
    with pytest.raises(BudgetExceeded) as err:
        check_deflated(bomb, "IM0001", Budget(max_bytes=1 << 30, max_ratio=100))
    assert "IM0001" in str(err.value) and str(tmp_path) not in str(err.value)
    with pytest.raises(BudgetExceeded):  # refused at the first piece over the size limit, not after
        check_deflated(bomb, "IM0001", Budget(max_bytes=1 << 20, max_ratio=1e9))
    with pytest.raises(BudgetExceeded):
        ctlens.load(tmp_path / "bomb")  # the default budget (100x)
    broken = tmp_path / "broken" / "IM0002"
    broken.parent.mkdir()
    data = bomb.read_bytes()
    broken.write_bytes(data[: len(data) - 200] + b"\xff" * 200)
    with pytest.raises(CTLensError):  # a damaged stream: a clear error, not a crash
        ctlens.load(broken.parent)


def test_label_shows_the_cleaned_description(tmp_path: Path) -> None:
    mf.write_mr_series(tmp_path, [{}], description="Doe^Jane AXIAL Brain")
    (info,) = list_series(tmp_path)
    assert "Doe" not in info.label() and "Jane" not in info.label() and "AXIAL Brain" in info.label()
    assert ctlens.load(tmp_path, series="Jane").shape == (6, 12, 10)  # selection matches the raw description


def test_annotation_on_a_resampled_volume_finds_the_nearest_slice(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, positions=[0.0, 2.0, 4.0, 10.0], rows=8, cols=8)
    vol = ctlens.load(tmp_path)
    assert vol.meta.get("resampled_equidistant") and not vol.meta["sop_uids"]
    for sop, z in zip(truth.sop_uids, (0.0, 2.0, 4.0, 10.0), strict=True):
        k = slice_index_for_sop(vol, sop)
        assert abs(k * vol.spacing[0] - z) <= vol.spacing[0] / 2 + 1e-6
    with pytest.raises(SeriesSelectionError):
        slice_index_for_sop(vol, "1.2.3.4")


def test_load_volumes_of_a_plain_series_and_a_file(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path / "ct", n_slices=3, rows=8, cols=8)
    (vol,) = load_volumes(tmp_path / "ct")
    assert np.array_equal(vol.array, truth.hu) and vol.meta["n_volumes"] == 1
    ctlens.save(vol, tmp_path / "v.nii.gz")
    assert [v.shape for v in load_volumes(tmp_path / "v.nii.gz")] == [vol.shape]


def test_stream_reads_the_same_volume(tmp_path: Path) -> None:
    from ctlens.io.dicom_stream import iter_series_slices

    (truth,) = mf.write_mosaic_series(tmp_path, 1)
    mf.write_mosaic_series(tmp_path / "other", 2)  # a second series in a subfolder: pick the 4-D one's volume 1
    info = next(i for i in list_series(tmp_path) if i.n_volumes == 2)
    with iter_series_slices(tmp_path, series=info.series_id, volume=1) as stream:
        slices = np.stack(list(stream))
    assert np.array_equal(slices, ctlens.load(tmp_path, series=info.series_id, volume=1).array)
    assert stream.geometry.meta["volume_index"] == 1 and truth.shape == slices.shape


def test_source_instances_are_those_of_the_part_read(tmp_path: Path) -> None:
    """Results as DICOM refer to the instances of the acquisition analysed, not its sibling at the same positions."""
    from ctlens.connect.source_instances import match_source_instances

    truths = fac.write_acquisitions(tmp_path, [[0.0, 2.5, 5.0]] * 2, rows=8, cols=8)
    vol = ctlens.load(tmp_path, series="acq 2")
    series = match_source_instances(vol, tmp_path)
    assert [s.dataset.SOPInstanceUID for s in series.instances] == truths[1].sop_uids
