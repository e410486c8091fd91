"""The DICOM reader against synthetic series whose exact answer is known (see dicom_factory.py).

The first tests check the factory itself against plain pydicom and SimpleITK, so a failure further
down points at the reader, not at the test data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dicom_factory as fac
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from ctlens.core.errors import (
    CorruptFileError,
    CTLensError,
    GantryTiltError,
    SeriesSelectionError,
    UnevenSpacingError,
)
from ctlens.core.volume import Volume
from ctlens.io.uid_hash import hash_uid

OBLIQUE = (0.984808, 0.173648, 0.0, -0.173648, 0.984808, 0.0)  # axial rotated 10 deg about z


# --------------------------------------------------------------------------- helpers


def load(path, **kw) -> Volume:
    import ctlens

    return ctlens.load(path, **kw)


def list_series(path):
    from ctlens.io import list_series as _list_series

    return _list_series(path)


def assert_matches(vol: Volume, truth: fac.SeriesTruth, *, check_dtype: bool = True) -> None:
    """Exact HU equality and geometry (affine within 1e-4) against the truth."""
    assert vol.shape == truth.shape, f"shape {vol.shape} != {truth.shape}"
    if check_dtype:
        assert vol.array.dtype == truth.hu.dtype, f"dtype {vol.array.dtype} != {truth.hu.dtype}"
    if not np.array_equal(vol.array, truth.hu):
        bad = np.argwhere(vol.array != truth.hu)
        same_slice = [k for k in range(truth.shape[0]) if np.array_equal(vol.array[0], truth.hu[k])]
        raise AssertionError(
            f"{len(bad)} voxels differ, first at {bad[0].tolist()}: {vol.array[tuple(bad[0])]} != "
            f"{truth.hu[tuple(bad[0])]}; volume slice 0 equals truth slice(s) {same_slice}"
        )
    np.testing.assert_allclose(vol.spacing, truth.spacing, atol=1e-4, err_msg="spacing (z, y, x)")
    np.testing.assert_allclose(vol.origin, truth.origin, atol=1e-4, err_msg="origin")
    np.testing.assert_allclose(vol.direction, truth.direction, atol=1e-4, err_msg="direction columns")
    np.testing.assert_allclose(vol.affine, truth.affine, atol=1e-4, err_msg="affine")


def assert_names_file(exc: CTLensError, *names: str) -> None:
    text = str(exc)
    assert any(name in text for name in names), f"message {text!r} names none of {names}"


def sorted_pydicom_hu(paths: list[Path]) -> np.ndarray:
    """HU stacked in position order, with plain pydicom only (an independent check of the factory)."""
    dss = [pydicom.dcmread(p) for p in paths]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.array(d.ImagePositionPatient, dtype=float) @ normal))
    out = []
    for d in dss:
        arr = d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        if "PixelPaddingValue" in d:
            arr[d.pixel_array == d.PixelPaddingValue] = -1024
        out.append(arr)
    return np.stack(out)


ENCODINGS = [
    ImplicitVRLittleEndian,
    RLELossless,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
]


def _need_encoder(ts: str) -> None:
    if not fac.can_encode(ts):
        pytest.skip(f"no installed encoder writes {pydicom.uid.UID(ts).name}")


# --------------------------------------------------------------------------- the factory itself


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, *ENCODINGS], ids=lambda t: pydicom.uid.UID(t).keyword)
def test_factory_files_decode_to_truth(tmp_path: Path, ts: str) -> None:
    _need_encoder(ts)
    truth = fac.write_ct_series(tmp_path, transfer_syntax=ts, shuffle_names=True, padding_value=-2000)
    assert pydicom.dcmread(truth.paths[0]).file_meta.TransferSyntaxUID == ts
    assert np.array_equal(sorted_pydicom_hu(truth.paths), truth.hu)
    assert (truth.hu == -1024).any() and truth.hu.max() > 2000


@pytest.mark.parametrize("orientation", [fac.AXIAL, fac.CORONAL, fac.SAGITTAL, OBLIQUE], ids=str)
def test_factory_geometry_matches_simpleitk(tmp_path: Path, orientation) -> None:
    truth = fac.write_ct_series(
        tmp_path, orientation=orientation, spacing=(2.5, 0.7, 0.8), rows=20, cols=24, shuffle_names=True
    )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(image), truth.hu)
    spacing, origin, direction = Volume(truth.hu, truth.spacing, truth.origin, truth.direction).itk_geometry()
    np.testing.assert_allclose(image.GetSpacing(), spacing, atol=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), origin, atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), direction, atol=1e-4)


def test_factory_tilt_truth(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, tilt_deg=15.0)
    ds = pydicom.dcmread(truth.paths[1])
    assert float(ds.GantryDetectorTilt) == 15.0
    np.testing.assert_allclose(truth.spacing[0], 2.5 * np.cos(np.deg2rad(15)), atol=1e-5)
    for k, ipp in enumerate(truth.ipps):
        p = truth.affine @ [k, truth.inplane_shift[k] / truth.spacing[1], 0, 1]
        np.testing.assert_allclose(p[:3], ipp, atol=1e-4)


def test_factory_multiframe_decodes(tmp_path: Path) -> None:
    truth = fac.write_multiframe_ct(tmp_path / "mf.dcm", frame_order="shuffled")
    ds = pydicom.dcmread(truth.paths[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2.1" and int(ds.NumberOfFrames) == truth.shape[0]
    pos = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
    assert np.array_equal(ds.pixel_array[np.argsort(pos)].astype(np.int16) - 1024, truth.hu)


# --------------------------------------------------------------------------- ordering, meta


def test_shuffled_names_and_reversed_instance_numbers(tmp_path: Path) -> None:
    truth = fac.write_ct_series(
        tmp_path,
        n_slices=9,
        rows=20,
        cols=24,
        spacing=(2.5, 0.7, 0.8),
        shuffle_names=True,
        reverse_instance_numbers=True,
    )
    assert [p.name for p in truth.paths] != sorted(p.name for p in truth.paths)
    assert_matches(load(tmp_path), truth)


def test_descending_acquisition_and_list_of_files(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, positions=[10.0, 7.5, 5.0, 2.5, 0.0, -2.5], shuffle_names=True)
    files = sorted(truth.paths, key=lambda p: p.name)
    assert_matches(load(files), truth)


def test_meta_fields_and_no_identifiers(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, description="chest 1mm", kernel="Br36d", shuffle_names=True)
    vol = load(tmp_path)
    meta = vol.meta
    assert meta["series_uid"] == hash_uid(truth.series_uid)
    assert meta["study_uid"] == hash_uid(truth.study_uid)
    assert "series_description" not in meta  # free text: the reader de-identifies meta once (deidentify_meta)
    assert meta["kernel"] == "Br36d"
    assert meta["manufacturer"] == truth.manufacturer
    assert float(meta["slice_thickness"]) == pytest.approx(truth.slice_thickness)
    assert meta["sop_uids"] == [hash_uid(u) for u in truth.sop_uids]
    assert isinstance(meta["warnings"], list)
    assert isinstance(meta["series_selection"], str) and meta["series_selection"]
    text = repr(meta)
    for identifier in [truth.series_uid, truth.study_uid, *truth.sop_uids, "Synthetic^Patient", "SYN-PAT-001"]:
        assert identifier not in text


def test_slice_index_for_sop(tmp_path: Path) -> None:
    from ctlens.io import slice_index_for_sop

    truth = fac.write_ct_series(tmp_path, n_slices=7, shuffle_names=True, reverse_instance_numbers=True)
    vol = load(tmp_path)
    for k, uid in enumerate(truth.sop_uids):
        assert slice_index_for_sop(vol, uid) == k


# --------------------------------------------------------------------------- uneven spacing

GAP_POSITIONS = [0.0, 2.5, 5.0, 10.0, 12.5, 15.0, 17.5]  # the slice at 7.5 is missing


def test_missing_slice_warns(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, positions=GAP_POSITIONS, shuffle_names=True)
    vol = load(tmp_path, uneven="warn")
    assert_matches(vol, truth)  # slices kept as they are, spacing = median step 2.5
    assert vol.spacing[0] == pytest.approx(2.5)
    assert vol.meta["spacing_uneven"] is True
    assert vol.meta["missing_slices"] == 1
    assert vol.meta["warnings"], "a warning about the uneven spacing is expected"


def test_missing_slice_error(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, positions=GAP_POSITIONS)
    with pytest.raises(UnevenSpacingError) as info:
        load(tmp_path, uneven="error")
    assert_names_file(info.value, tmp_path.name, *(p.name for p in truth.paths))


def test_missing_slice_resample(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, positions=GAP_POSITIONS, shuffle_names=True)
    vol = load(tmp_path, uneven="resample")
    assert vol.shape == (8, 32, 32)
    np.testing.assert_allclose(vol.spacing, (2.5, 0.7, 0.7), atol=1e-4)
    np.testing.assert_allclose(vol.origin, truth.origin, atol=1e-4)
    np.testing.assert_allclose(vol.direction, truth.direction, atol=1e-4)
    kept = [0, 1, 2, 4, 5, 6, 7]
    assert np.array_equal(vol.array[kept].astype(np.float64), truth.hu.astype(np.float64))
    middle = (truth.hu[2].astype(np.float64) + truth.hu[3]) / 2  # linear along z
    np.testing.assert_allclose(vol.array[3].astype(np.float64), middle, atol=1.0)


# --------------------------------------------------------------------------- series discovery


def _two_series_folder(root: Path) -> tuple[fac.SeriesTruth, fac.SeriesTruth]:
    study = pydicom.uid.generate_uid()
    big = fac.write_ct_series(
        root, n_slices=10, description="lung thin", kernel="B70f", study_uid=study, series_number=2, seed=1
    )
    small = fac.write_ct_series(
        root,
        n_slices=6,
        origin=(-10.0, -20.0, 31.0),
        description="soft tissue",
        kernel="B30f",
        study_uid=study,
        series_number=3,
        seed=2,
    )
    fac.write_scout(root, study_uid=study, name="scout_localizer.dcm")
    fac.write_scout(root, study_uid=study, localizer=False, name="scout_plain.dcm", series_number=98)
    return big, small


def test_list_series_two_series_and_scouts(tmp_path: Path) -> None:
    big, small = _two_series_folder(tmp_path)
    infos = list_series(tmp_path)
    assert len(infos) == 2, [i.description for i in infos]
    assert sorted(i.index for i in infos) == [0, 1]
    by_desc = {i.description: i for i in infos}
    assert set(by_desc) == {"lung thin", "soft tissue"}
    for info, truth in ((by_desc["lung thin"], big), (by_desc["soft tissue"], small)):
        assert info.n_slices == truth.shape[0]
        assert (info.rows, info.columns) == truth.shape[1:]
        assert info.orientation == "axial"
        assert info.modality == "CT"
        assert info.kernel == truth.kernel
        assert info.series_uid in (truth.series_uid, hash_uid(truth.series_uid))
    assert by_desc["lung thin"].study_id == by_desc["soft tissue"].study_id
    assert big.study_uid not in by_desc["lung thin"].study_id


def test_default_pick_is_largest_series(tmp_path: Path) -> None:
    big, _ = _two_series_folder(tmp_path)
    vol = load(tmp_path)
    assert_matches(vol, big)
    assert vol.meta["series_selection"]


def test_select_series_by_index_uid_and_description(tmp_path: Path) -> None:
    _, small = _two_series_folder(tmp_path)
    index = next(i.index for i in list_series(tmp_path) if i.description == "soft tissue")
    assert_matches(load(tmp_path, series=index), small)
    assert_matches(load(tmp_path, series=small.series_uid), small)
    assert_matches(load(tmp_path, series="soft"), small)


@pytest.mark.parametrize("selector", ["no such series", 7])
def test_bad_series_selector(tmp_path: Path, selector) -> None:
    _two_series_folder(tmp_path)
    with pytest.raises(SeriesSelectionError) as info:
        load(tmp_path, series=selector)
    assert "lung thin" in str(info.value) and "soft tissue" in str(info.value)


def test_one_uid_two_sizes_are_two_entries(tmp_path: Path) -> None:
    uid = pydicom.uid.generate_uid()
    a = fac.write_ct_series(tmp_path, n_slices=6, series_uid=uid, name_prefix="a_")
    b = fac.write_ct_series(tmp_path, n_slices=4, rows=24, cols=24, series_uid=uid, name_prefix="b_", seed=3)
    infos = list_series(tmp_path)
    assert sorted((i.n_slices, i.rows) for i in infos) == [(4, 24), (6, 32)]
    assert_matches(load(tmp_path), a)
    small = next(i.index for i in infos if i.rows == 24)
    assert_matches(load(tmp_path, series=small), b)


@pytest.mark.parametrize(
    ("orientation", "name"),
    [(fac.AXIAL, "axial"), (fac.CORONAL, "coronal"), (fac.SAGITTAL, "sagittal"), (OBLIQUE, "axial")],
    ids=["axial", "coronal", "sagittal", "oblique10"],
)
def test_orientations(tmp_path: Path, orientation, name: str) -> None:
    truth = fac.write_ct_series(
        tmp_path, orientation=orientation, rows=20, cols=24, spacing=(2.0, 0.7, 0.8), shuffle_names=True
    )
    assert [i.orientation for i in list_series(tmp_path)] == [name]
    assert_matches(load(tmp_path), truth)


def test_strongly_oblique_is_called_oblique(tmp_path: Path) -> None:
    c, s = np.cos(np.deg2rad(45)), np.sin(np.deg2rad(45))
    truth = fac.write_ct_series(tmp_path, orientation=(1.0, 0.0, 0.0, 0.0, c, s))
    assert [i.orientation for i in list_series(tmp_path)] == ["oblique"]
    assert_matches(load(tmp_path), truth)


# --------------------------------------------------------------------------- files and folders


def test_nested_folders_three_levels(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    truth = fac.write_ct_series(flat, n_slices=9, shuffle_names=True)
    root = tmp_path / "root"
    dirs = [root / "a" / "b" / "c", root / "a" / "x", root / "d" / "e" / "f"]
    for i, path in enumerate(truth.paths):
        dirs[i % 3].mkdir(parents=True, exist_ok=True)
        shutil.move(path, dirs[i % 3] / path.name)
    assert_matches(load(root), truth)


def test_files_without_extension(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, extension="", shuffle_names=True)
    assert all(p.suffix == "" for p in truth.paths)
    assert_matches(load(tmp_path), truth)
    one = load(truth.paths[2])  # a single file without extension given directly
    assert np.array_equal(one.array, truth.hu[2:3])
    np.testing.assert_allclose(one.origin, truth.ipps[2], atol=1e-4)


@pytest.mark.parametrize(
    ("implicit", "little"), [(True, True), (False, True), (False, False)], ids=["implicit", "explicit", "big-endian"]
)
def test_raw_datasets_without_preamble(tmp_path: Path, implicit: bool, little: bool) -> None:
    """Files that are a bare dataset (no preamble, no DICM, no file meta) read like their PS3.10 originals."""
    truth = fac.write_ct_series(tmp_path / "series", signed=True, seed=7)
    for path in truth.paths:
        raw = fac.write_raw_dataset(path, tmp_path / "raw" / path.name, implicit=implicit, little=little)
        assert raw.read_bytes()[128:132] != b"DICM" and raw.read_bytes()[:4] in (
            b"\x08\x00\x05\x00",
            b"\x00\x08\x00\x05",
        )
    assert_matches(load(tmp_path / "raw"), truth)


def test_dicomdir_and_readme_are_ignored(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path / "series", shuffle_names=True)
    fac.write_dicomdir_like(tmp_path / "DICOMDIR")
    fac.write_non_dicom(tmp_path / "README.txt", "Synthetic test export.\n")
    assert len(list_series(tmp_path)) == 1
    assert_matches(load(tmp_path), truth)


def test_zip_gives_the_same_volume_as_the_folder(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path / "series", shuffle_names=True)
    archive = fac.make_zip(tmp_path / "series", tmp_path / "series.zip", arcname_prefix="export/CT/")
    from_zip = load(archive)
    assert_matches(from_zip, truth)
    from_folder = load(tmp_path / "series")
    assert from_zip.meta["sop_uids"] == from_folder.meta["sop_uids"]


# --------------------------------------------------------------------------- pixel values


@pytest.mark.parametrize(
    ("signed", "bits", "slope", "intercept", "dtype"),
    [
        (True, 16, 1.0, 0.0, np.int16),
        (False, 12, 1.0, -1024.0, np.int16),
        (False, 16, 0.5, -1024.0, np.float32),
        (True, 16, 0.25, -1000.5, np.float32),
    ],
    ids=["signed-intercept0", "unsigned12-intercept-1024", "slope0.5", "slope0.25-intercept-1000.5"],
)
def test_rescale_and_dtype(tmp_path: Path, signed: bool, bits: int, slope: float, intercept: float, dtype) -> None:
    truth = fac.write_ct_series(
        tmp_path, signed=signed, bits_stored=bits, slope=slope, intercept=intercept, shuffle_names=True
    )
    assert truth.hu.dtype == dtype
    if signed and intercept == 0:
        assert truth.raw.min() < 0
    assert_matches(load(tmp_path), truth)


def test_padding_value_becomes_air(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, padding_value=-2000, shuffle_names=True)
    assert (truth.raw == -2000).any()
    vol = load(tmp_path)
    assert_matches(vol, truth)
    assert vol.array[truth.raw == -2000].max() == -1024


@pytest.mark.parametrize("ts", ENCODINGS, ids=lambda t: pydicom.uid.UID(t).keyword)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_encodings_match_uncompressed(tmp_path: Path, ts: str, signed: bool) -> None:
    _need_encoder(ts)
    plain = fac.write_ct_series(tmp_path / "plain", signed=signed, seed=5)
    packed = fac.write_ct_series(tmp_path / "packed", signed=signed, seed=5, transfer_syntax=ts, shuffle_names=True)
    assert np.array_equal(plain.hu, packed.hu)
    vol = load(tmp_path / "packed")
    assert_matches(vol, packed)
    assert np.array_equal(vol.array, load(tmp_path / "plain").array)


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, RLELossless], ids=["explicit", "rle"])
@pytest.mark.parametrize("frame_order", ["descending", "shuffled"])
def test_multiframe_enhanced_ct(tmp_path: Path, ts: str, frame_order: str) -> None:
    truth = fac.write_multiframe_ct(tmp_path / "enhanced.dcm", transfer_syntax=ts, frame_order=frame_order)
    assert_matches(load(truth.paths[0]), truth)
    assert_matches(load(tmp_path), truth)


# --------------------------------------------------------------------------- broken input


def test_truncated_slice_raises_naming_the_file(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, shuffle_names=True)
    fac.write_non_dicom(tmp_path / "junk.dcm")
    bad = fac.truncate(truth.paths[4], 0.9)  # header intact, pixel data cut short
    with pytest.raises(CorruptFileError) as info:
        load(tmp_path)
    assert bad.name in str(info.value)


def test_non_dicom_and_unparsable_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path / "series", shuffle_names=True)
    fac.write_non_dicom(tmp_path / "junk.dcm")
    fac.write_non_dicom(tmp_path / "series" / "notes.bin", seed=1)
    extra = fac.write_ct_series(tmp_path / "broken", n_slices=1, name_prefix="cut_", seed=9)
    fac.truncate(extra.paths[0], 0.02)  # only part of the preamble left
    vol = load(tmp_path)
    assert_matches(vol, truth)
    warnings = " ".join(vol.meta["warnings"])
    assert "junk.dcm" in warnings and "notes.bin" in warnings, warnings


# --------------------------------------------------------------------------- gantry tilt


def test_gantry_tilt_refused(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path, tilt_deg=15.0)
    with pytest.raises(GantryTiltError) as info:
        load(tmp_path, tilt="refuse")
    assert_names_file(info.value, tmp_path.name, *(p.name for p in truth.paths))


def test_gantry_tilt_corrected(tmp_path: Path) -> None:
    table_step = 2.5
    row_spacing = round(table_step * np.sin(np.deg2rad(15.0)), 6)  # one row of shift per slice
    truth = fac.write_ct_series(tmp_path, tilt_deg=15.0, spacing=(table_step, row_spacing, 0.7), shuffle_names=True)
    vol = load(tmp_path, tilt="correct")
    d = vol.direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-5, err_msg="direction not orthonormal")
    np.testing.assert_allclose(d, truth.direction, atol=1e-4)
    np.testing.assert_allclose(vol.spacing, truth.spacing, atol=1e-4)
    assert vol.shape[0] == truth.shape[0] and vol.shape[2] == truth.shape[2]
    for k, ipp in enumerate(truth.ipps):
        p = vol.affine @ [k, truth.inplane_shift[k] / row_spacing, 0, 1]
        np.testing.assert_allclose(p[:3], ipp, atol=1e-4, err_msg=f"slice {k}")
    # content: slice k moved by k rows (interpolation weights ~1e-6, so within 1 HU)
    rows = truth.shape[1]
    for k in range(truth.shape[0]):
        y0 = int(round(float(vol.index(truth.ipps[k])[1])))
        j = np.arange(1, rows - 1)
        j = j[(y0 + j >= 0) & (y0 + j < vol.shape[1])]
        got = vol.array[k, y0 + j, :].astype(np.float64)
        np.testing.assert_allclose(got, truth.hu[k, j, :], atol=1.0, err_msg=f"slice {k} content")


# --------------------------------------------------------------------------- SimpleITK cross-check


@pytest.mark.parametrize("orientation", [fac.AXIAL, fac.CORONAL, OBLIQUE], ids=["axial", "coronal", "oblique10"])
def test_same_as_simpleitk(tmp_path: Path, orientation) -> None:
    fac.write_ct_series(
        tmp_path, orientation=orientation, rows=20, cols=24, spacing=(1.5, 0.6, 0.9), shuffle_names=True, seed=4
    )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    vol = load(tmp_path)
    assert np.array_equal(vol.array, sitk.GetArrayFromImage(image))
    spacing, origin, direction = vol.itk_geometry()
    np.testing.assert_allclose(spacing, image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(origin, image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(direction, image.GetDirection(), atol=1e-4)
