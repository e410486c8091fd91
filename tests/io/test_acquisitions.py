"""Several stacks in one series (acquisitions, echoes, series numbers), split like dcm2niix; duplicated files dropped.

Each part is checked against SimpleITK's ``ImageSeriesReader`` reading that part's files alone, and against the
factory's truth (see dicom_factory.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dicom_factory as fac
import numpy as np
import pytest
import SimpleITK as sitk

import ctlens
from ctlens.core.errors import GeometryError, SeriesSelectionError
from ctlens.core.volume import Volume
from ctlens.io import list_series

STEP = 2.5


def _run(start: float, n: int, step: float = STEP) -> list[float]:
    return [start + k * step for k in range(n)]


def _sitk(paths: list[Path]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in paths])  # in slice order (the truth's order)
    return reader.Execute()


def assert_same_as_sitk(vol: Volume, paths: list[Path]) -> None:
    image = _sitk(paths)
    assert np.array_equal(vol.array, sitk.GetArrayFromImage(image)), "voxels differ from SimpleITK"
    spacing, origin, direction = vol.itk_geometry()
    np.testing.assert_allclose(spacing, image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(origin, image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(direction, image.GetDirection(), atol=1e-4)


def assert_truth(vol: Volume, truth: fac.SeriesTruth) -> None:
    assert vol.shape == truth.shape and np.array_equal(vol.array, truth.hu)
    np.testing.assert_allclose(vol.affine, truth.affine, atol=1e-4)


def _three(folder: Path, **options) -> list[fac.SeriesTruth]:
    """Acquisitions of 10, 12 and 9 slices at overlapping positions (the second is the largest)."""
    return fac.write_acquisitions(folder, [_run(0, 10), _run(-5, 12), _run(2.5, 9)], rows=16, cols=20, **options)


@pytest.mark.parametrize("orientation", [fac.AXIAL, fac.CORONAL, fac.SAGITTAL], ids=["axial", "coronal", "sagittal"])
def test_three_acquisitions_with_duplicated_files(tmp_path: Path, orientation) -> None:
    truths = _three(tmp_path, orientation=orientation)
    for path in truths[2].paths[:3]:  # the same instances, twice (a second export of the same files)
        shutil.copy(path, path.with_name("copy_" + path.name))
    infos = list_series(tmp_path)
    assert len(infos) == 3
    assert sorted(i.part for i in infos) == ["acq 1", "acq 2", "acq 3"]
    assert len({i.series_id for i in infos}) == 3 and len({i.series_uid for i in infos}) == 1
    by_part = {i.part: i for i in infos}
    for a, truth in enumerate(truths):
        info = by_part[f"acq {a + 1}"]
        assert info.n_slices == truth.shape[0]
        for selector in (info.index, str(info.index), info.series_id, f"ACQ {a + 1}"):
            vol = ctlens.load(tmp_path, series=selector)
            assert_truth(vol, truth)
        assert_same_as_sitk(vol, truth.paths)
        assert vol.meta["series_part"] == f"acq {a + 1}" and vol.meta["series_key"] == info.series_id
        dropped = [w for w in vol.meta["warnings"] if "dropped 3 duplicated file(s)" in w]
        assert dropped and "copy_ACQ3_" in dropped[0]  # the user's own file names


def test_default_is_largest_acquisition_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    truths = _three(tmp_path)
    with caplog.at_level("WARNING", logger="ctlens.io"):
        vol = ctlens.load(tmp_path)
    assert_truth(vol, truths[1])
    text = " ".join(vol.meta["warnings"])
    assert "acq 2" in text and "acq 1" in text and "acq 3" in text and "overlapping positions" in text
    assert "several acquisitions" in caplog.text
    keys = {i.part: i.series_id for i in list_series(tmp_path)}
    assert keys["acq 1"] in text and keys["acq 3"] in text  # how to pick the others
    by_uid = ctlens.load(tmp_path, series=truths[0].series_uid)  # the UID of a split series: the default part
    assert_truth(by_uid, truths[1])
    assert "by UID" in by_uid.meta["series_selection"]


def test_equal_acquisitions_default_to_the_first(tmp_path: Path) -> None:
    truths = fac.write_acquisitions(tmp_path, [_run(0, 6)] * 3, rows=8, cols=8)
    assert [i.part for i in list_series(tmp_path)] == ["acq 1", "acq 2", "acq 3"]
    assert_truth(ctlens.load(tmp_path), truths[0])


def test_split_by_time_without_acquisition_numbers(tmp_path: Path) -> None:
    """No AcquisitionNumber: the times split them; the second starts beyond the first's end, and goes down."""
    positions = [_run(0, 10), list(reversed(_run(5, 12))), _run(-2.5, 4)]
    truths = fac.write_acquisitions(tmp_path, positions, numbered=False, rows=8, cols=12)
    infos = list_series(tmp_path)
    assert len(infos) == 3 and all(i.part.startswith("acquired ") for i in infos)
    for truth in truths:
        match = [i for i in infos if i.n_slices == truth.shape[0]]
        vol = ctlens.load(tmp_path, series=match[0].series_id)
        assert_truth(vol, truth)
        assert_same_as_sitk(vol, truth.paths)


def test_acquisition_numbers_per_rotation_are_merged(tmp_path: Path) -> None:
    """Scanners that number every rotation: the contiguous numbers of one pass form one stack."""
    uid, study, frame = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.3"
    passes = []
    for p in range(2):
        blocks = []
        for r in range(3):
            blocks.append(
                fac.write_ct_series(
                    tmp_path,
                    positions=_run(r * 4 * STEP, 4),
                    rows=8,
                    cols=8,
                    series_uid=uid,
                    study_uid=study,
                    frame_uid=frame,
                    acquisition_number=1 + 3 * p + r,
                    name_prefix=f"P{p}R{r}_",
                    seed=10 * p + r,
                )
            )
        passes.append(blocks)
    infos = list_series(tmp_path)
    assert [(i.part, i.n_slices) for i in infos] == [("acq 1 to 3", 12), ("acq 4 to 6", 12)]
    for info, blocks in zip(infos, passes, strict=True):
        vol = ctlens.load(tmp_path, series=info.series_id)
        assert np.array_equal(vol.array, np.concatenate([b.hu for b in blocks]))
        assert_same_as_sitk(vol, [p for b in blocks for p in b.paths])


def test_echoes_and_series_numbers_are_entries(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.10"
    echo = [
        fac.write_ct_series(
            tmp_path / "echo", series_uid=uid, n_slices=5, echo_number=e, name_prefix=f"E{e}_", seed=e, rows=8, cols=8
        )
        for e in (1, 2)
    ]
    assert sorted(i.part for i in list_series(tmp_path / "echo")) == ["echo 1", "echo 2"]
    assert_truth(ctlens.load(tmp_path / "echo", series="echo 2"), echo[1])
    numbers = [
        fac.write_ct_series(
            tmp_path / "sn",
            series_uid=uid,
            n_slices=4 + n,
            series_number=n,
            name_prefix=f"S{n}_",
            seed=n,
            rows=8,
            cols=8,
        )
        for n in (2, 3)
    ]
    infos = list_series(tmp_path / "sn")
    assert sorted(i.part for i in infos) == ["series 2", "series 3"]
    assert_truth(ctlens.load(tmp_path / "sn", series="series 2"), numbers[0])


def test_duplicated_files_of_a_plain_series_are_dropped(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, n_slices=6, rows=8, cols=8)
    for path in truth.paths:
        shutil.copy(path, tmp_path / ("again_" + path.name))
    infos = list_series(tmp_path)
    assert len(infos) == 1 and infos[0].part == "" and infos[0].n_slices == 6
    vol = ctlens.load(tmp_path)
    assert_truth(vol, truth)
    assert any("dropped 6 duplicated file(s)" in w for w in vol.meta["warnings"])


def test_repeats_nothing_tells_apart_are_one_clear_error(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.20"
    for copy in range(2):  # new SOP UIDs, every other field the same: not duplicates, not acquisitions
        fac.write_ct_series(tmp_path, series_uid=uid, n_slices=4, name_prefix=f"C{copy}_", seed=copy, rows=8, cols=8)
    assert len(list_series(tmp_path)) == 1
    with pytest.raises(GeometryError) as err:
        ctlens.load(tmp_path)
    text = str(err.value)
    assert tmp_path.name in text and "share a position" in text and "AcquisitionNumber" in text
    assert "Traceback" not in text and "\n" not in text


def test_ambiguous_part_selector_lists_the_parts(tmp_path: Path) -> None:
    fac.write_acquisitions(tmp_path, [_run(0, 4)] * 2, rows=8, cols=8)
    fac.write_acquisitions(tmp_path, [_run(0, 4)] * 2, rows=8, cols=8, description="other", prefix="OTHER")
    with pytest.raises(SeriesSelectionError, match="matches 2 series") as err:
        ctlens.load(tmp_path, series="acq 1")
    assert "series=" in str(err.value)


def test_enhanced_multiframe_time_points_are_volumes(tmp_path: Path) -> None:
    """One enhanced file, two time points at the same positions (FrameContentSequence.TemporalPositionIndex).

    Since #23 time points are the volumes of one entry (``n_volumes``, ``volume=k``), no longer entries of their own.
    """
    import pydicom

    uid = "1.2.826.0.1.3680043.8.498.30"
    phases = [
        fac.write_multiframe_ct(tmp_path / f"t{t}.dcm", n_frames=5, series_uid=uid, seed=t, frame_order="shuffled")
        for t in (1, 2)
    ]
    first, second = (pydicom.dcmread(p.paths[0]) for p in phases)
    for t, ds in enumerate((first, second), start=1):
        for item in ds.PerFrameFunctionalGroupsSequence:
            item.FrameContentSequence[0].TemporalPositionIndex = t
    first.PerFrameFunctionalGroupsSequence = [*first.PerFrameFunctionalGroupsSequence]
    first.PerFrameFunctionalGroupsSequence.extend(second.PerFrameFunctionalGroupsSequence)
    first.PixelData = first.PixelData + second.PixelData
    first.NumberOfFrames = 10
    (tmp_path / "t1.dcm").unlink()
    (tmp_path / "t2.dcm").unlink()
    first.save_as(tmp_path / "both.dcm", enforce_file_format=True)
    infos = list_series(tmp_path)
    assert len(infos) == 1 and infos[0].n_volumes == 2 and infos[0].volume_labels == ["time point 1", "time point 2"]
    for k, truth in enumerate(phases):
        vol = ctlens.load(tmp_path, series=infos[0].series_id, volume=k)
        assert_truth(vol, truth)
        assert vol.meta["volume_index"] == k and vol.meta["n_volumes"] == 2
