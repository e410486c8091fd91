"""NIfTI reading/writing and the LPS <-> RAS conversion, on synthetic volumes and the shared TotalSegmentator files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ctlens.core.errors import CorruptFileError, CTLensError, InputNotFoundError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io import nifti as nifti_module
from ctlens.io.lps_ras import (
    axcodes,
    lps_to_ras_affine,
    nifti_affine,
    ras_to_lps_affine,
    volume_geometry_from_nifti_affine,
)
from ctlens.io.nifti import guess_modality, read_nifti, write_nifti

# ----------------------------------------------------------------------------------------------------------------
# helpers


def _data_dir() -> Path:
    env = os.environ.get("CTLENS_DATA_DIR")
    return Path(env) if env else Path(__file__).parents[2] / ".." / "shared" / "data"


def _shared_file(name: str) -> Path:
    path = _data_dir() / "totalsegmentator_example" / name
    if not path.is_file():
        pytest.skip(f"shared test data not found: {path} (set CTLENS_DATA_DIR or provide ../shared/data)")
    return path


def _rotation(axis: list[float], degrees: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    t = np.deg2rad(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def oblique_volume(dtype: type = np.int16, *, left_handed: bool = False) -> Volume:
    """An anisotropic, oblique volume with a non-zero origin and distinct voxel values."""
    rng = np.random.default_rng(7)
    array = rng.integers(-1024, 2000, size=(5, 6, 7)).astype(dtype)
    direction = _rotation([0.3, -0.5, 0.8], 23.0)[:, [2, 1, 0]]  # columns: slice, row, column axes
    if left_handed:
        direction[:, 0] *= -1
    return Volume(array, spacing=(2.5, 0.7, 0.9), origin=(-120.25, 33.5, 87.125), direction=direction)


def assert_same_volume(got: Volume, want: Volume, tol: float = 1e-5) -> None:
    assert got.array.dtype == want.array.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.array, want.array)
    np.testing.assert_allclose(got.affine, want.affine, atol=tol)
    np.testing.assert_allclose(got.spacing, want.spacing, atol=tol)
    np.testing.assert_allclose(got.direction, want.direction, atol=tol)


# ----------------------------------------------------------------------------------------------------------------
# orientation


def test_lps_ras_conversion_is_an_involution_and_maps_points() -> None:
    vol = oblique_volume()
    ras = lps_to_ras_affine(vol.affine)
    np.testing.assert_allclose(ras_to_lps_affine(ras), vol.affine)
    # voxel (z, y, x) = (1, 2, 3) is NIfTI voxel (x, y, z) = (3, 2, 1); its RAS position is LPS with x, y negated
    lps = vol.world((1, 2, 3))
    np.testing.assert_allclose(ras @ [3, 2, 1, 1], [-lps[0], -lps[1], lps[2], 1.0])
    np.testing.assert_allclose(nifti_affine(vol), ras)


def test_volume_geometry_from_nifti_affine_inverts_nifti_affine() -> None:
    vol = oblique_volume(left_handed=True)
    spacing, origin, direction = volume_geometry_from_nifti_affine(nifti_affine(vol))
    np.testing.assert_allclose(spacing, vol.spacing)
    np.testing.assert_allclose(origin, vol.origin)
    np.testing.assert_allclose(direction, vol.direction)


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([1.0, 0.0, 1.0, 1.0]),  # a zero-length axis
        np.full((4, 4), np.nan),
        np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]),  # two axes point the same way
    ],
)
def test_volume_geometry_from_degenerate_affine_is_refused(affine: np.ndarray) -> None:
    with pytest.raises(ValueError):
        volume_geometry_from_nifti_affine(affine)


def test_axcodes_are_in_array_order() -> None:
    assert axcodes(Volume(np.zeros((2, 2, 2)))) == ("S", "P", "L")
    # slice axis towards inferior, rows towards anterior, columns towards the patient's right
    flipped = Volume(np.zeros((2, 2, 2)), direction=np.column_stack([[0, 0, -1.0], [0, -1.0, 0], [-1.0, 0, 0]]))
    assert axcodes(flipped) == ("I", "A", "R")


# ----------------------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("left_handed", [False, True])
def test_round_trip_oblique_volume(tmp_path: Path, suffix: str, left_handed: bool) -> None:
    vol = oblique_volume(left_handed=left_handed)
    path = tmp_path / f"vol{suffix}"
    write_nifti(vol, path)
    got = read_nifti(path)
    assert_same_volume(got, vol)
    assert got.modality == "CT" and got.meta["modality_source"] == "file"
    assert got.meta["sform_code"] == 1 and got.meta["qform_code"] == 1
    assert got.meta["compressed"] is (suffix == ".nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp files left


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_round_trip_keeps_dtype(tmp_path: Path, dtype: type) -> None:
    vol = Volume(np.arange(24).reshape(2, 3, 4).astype(dtype), spacing=(3, 2, 1), modality="MR")
    write_nifti(vol, tmp_path / "a.nii.gz")
    got = read_nifti(tmp_path / "a.nii.gz")
    assert_same_volume(got, vol)
    assert got.modality == "MR" and got.meta["scaled"] is False


def test_written_file_reads_the_same_in_nibabel_and_simpleitk(tmp_path: Path) -> None:
    vol = oblique_volume()
    path = tmp_path / "vol.nii.gz"
    write_nifti(vol, path)
    img = nib.load(path)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), vol.array.transpose(2, 1, 0))
    np.testing.assert_allclose(img.affine, nifti_affine(vol), atol=1e-5)
    np.testing.assert_allclose(img.header.get_qform(), nifti_affine(vol), atol=1e-4)
    simg = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(simg), vol.array)
    spacing, origin, direction = vol.itk_geometry()
    np.testing.assert_allclose(simg.GetSpacing(), spacing, atol=1e-4)
    np.testing.assert_allclose(simg.GetOrigin(), origin, atol=1e-4)
    np.testing.assert_allclose(simg.GetDirection(), direction, atol=1e-4)


def test_bool_volume_is_written_as_uint8(tmp_path: Path) -> None:
    mask = Volume(np.eye(3, dtype=bool)[None], modality="SEG")
    write_nifti(mask, tmp_path / "m.nii")
    got = read_nifti(tmp_path / "m.nii")
    assert got.array.dtype == np.uint8 and got.modality == "SEG"
    np.testing.assert_array_equal(got.array, mask.array)


# ----------------------------------------------------------------------------------------------------------------
# reading details


def _save(tmp_path: Path, data: np.ndarray, affine: np.ndarray | None = None, name: str = "x.nii.gz", **hdr) -> Path:
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    for key, value in hdr.items():
        img.header[key] = value
    path = tmp_path / name
    nib.save(img, path)
    return path


def test_4d_with_one_volume_is_squeezed(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(4, 3, 2, 1)
    got = read_nifti(_save(tmp_path, data))
    np.testing.assert_array_equal(got.array, data[..., 0].transpose(2, 1, 0))


def test_4d_with_several_volumes_reads_volume_0_or_k(tmp_path: Path) -> None:
    data = np.arange(72, dtype=np.int16).reshape(4, 3, 2, 3)
    path = _save(tmp_path, data, name="dwi.nii.gz")
    got = read_nifti(path)
    np.testing.assert_array_equal(got.array, data[..., 0].transpose(2, 1, 0))
    assert got.meta["n_volumes"] == 3 and any("3 volumes" in w for w in got.meta["warnings"])
    np.testing.assert_array_equal(read_nifti(path, volume=2).array, data[..., 2].transpose(2, 1, 0))


def test_scaled_data_become_float32(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.arange(8).reshape(2, 2, 2) * 0.5 - 1000.25, np.eye(4))
    img.set_data_dtype(np.int16)  # nibabel stores int16 with scl_slope / scl_inter
    nib.save(img, tmp_path / "s.nii.gz")
    stored = nib.load(tmp_path / "s.nii.gz")
    assert (stored.dataobj.slope, stored.dataobj.inter) != (1.0, 0.0)
    got = read_nifti(tmp_path / "s.nii.gz")
    assert got.array.dtype == np.float32 and got.meta["scaled"] is True
    np.testing.assert_allclose(got.array, stored.get_fdata().transpose(2, 1, 0), atol=1e-3)
    np.testing.assert_allclose(got.array, img.get_fdata().transpose(2, 1, 0), atol=0.05)


def test_identifying_description_is_dropped(tmp_path: Path) -> None:
    path = _save(tmp_path, np.zeros((2, 2, 2), np.int16), descrip=b"DOE^JOHN 1970-01-01 MRN123", aux_file=b"DOE")
    got = read_nifti(path)
    assert "DOE" not in repr(got.meta) and got.meta["modality_source"] == "heuristic"


def test_metre_units_are_converted_to_mm(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.diag([0.001, 0.002, 0.003, 1.0]))
    img.header.set_xyzt_units("meter")
    nib.save(img, tmp_path / "m.nii")
    got = read_nifti(tmp_path / "m.nii")
    np.testing.assert_allclose(got.spacing, (3.0, 2.0, 1.0))
    assert got.meta["spatial_unit_in_file"] == "meter"


def test_caller_modality_wins(tmp_path: Path) -> None:
    got = read_nifti(_save(tmp_path, np.zeros((2, 2, 2), np.uint8)), modality="PT")
    assert got.modality == "PT" and got.meta["modality_source"] == "caller"


def test_guess_modality() -> None:
    assert guess_modality(np.array([-1024, -3, 50, 1200], np.int16)) == "CT"
    assert guess_modality(np.array([-1000.0, 400.0], np.float32)) == "CT"
    assert guess_modality(np.array([0, 1, 2, 117], np.uint8)) == "SEG"
    assert guess_modality(np.linspace(0, 800, 1000).astype(np.int16)) == "MR"
    assert guess_modality(np.array([-1.5, 2.0], np.float32)) == "MR"
    assert guess_modality(np.zeros((0,), np.int16)) == "MR"


# ----------------------------------------------------------------------------------------------------------------
# bad input


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty.nii.gz"):
        read_nifti(path)


def _big_random_nifti(tmp_path: Path, name: str) -> Path:
    data = np.random.default_rng(0).integers(-1000, 1000, size=(40, 40, 40)).astype(np.int16)
    return _save(tmp_path, data, name=name)


def test_truncated_gz_file(tmp_path: Path) -> None:
    path = _big_random_nifti(tmp_path, "cut.nii.gz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.nii\.gz.*truncated"):
        read_nifti(path)


def test_truncated_uncompressed_file(tmp_path: Path) -> None:
    path = _big_random_nifti(tmp_path, "cut.nii")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.nii.*truncated"):
        read_nifti(path)


def test_header_claiming_too_much_compressed_data_is_refused(tmp_path: Path) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((30000, 30000, 1000))  # 1.8 TB of voxels claimed by a file of a few hundred bytes
    hdr["vox_offset"] = 352
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4 + b"\0" * 1000))
    with pytest.raises(CorruptFileError, match="bomb.nii.gz"):
        read_nifti(path)


@pytest.mark.parametrize("name", ["text.nii", "text.nii.gz"])
def test_text_file_is_corrupt(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("this is not an image\n" * 40)
    with pytest.raises(CorruptFileError, match=name.replace(".", r"\.")):
        read_nifti(path)


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="nope.nii"):
        read_nifti(tmp_path / "nope.nii")
    (tmp_path / "a.nrrd").write_text("x")
    with pytest.raises(UnsupportedFormatError, match="a.nrrd"):
        read_nifti(tmp_path / "a.nrrd")
    with pytest.raises(UnsupportedFormatError):
        write_nifti(oblique_volume(), tmp_path / "a.img")


def test_write_into_missing_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(CTLensError, match="does not exist"):
        write_nifti(oblique_volume(), tmp_path / "missing" / "vol.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vol.nii.gz"
    write_nifti(oblique_volume(), path)
    before = path.read_bytes()

    def broken_save(img: object, filename: Path) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nifti_module.nib, "save", broken_save)
    with pytest.raises(CTLensError, match="No space left"):
        write_nifti(Volume(np.zeros((1, 2, 2), np.int16)), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.nii.gz"]


# ----------------------------------------------------------------------------------------------------------------
# the shared TotalSegmentator files: cross-check against nibabel and SimpleITK


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["ct_3mm.nii.gz", "seg_3mm.nii.gz", "mr_3mm.nii.gz"])
def test_matches_nibabel_and_simpleitk(name: str) -> None:
    path = _shared_file(name)
    vol = read_nifti(path)

    img = nib.load(path)
    ref = np.asanyarray(img.dataobj).transpose(2, 1, 0)
    assert vol.array.dtype == ref.dtype and vol.shape == ref.shape
    assert np.max(np.abs(vol.array.astype(np.float64) - ref)) == 0
    np.testing.assert_allclose(lps_to_ras_affine(vol.affine), img.affine, atol=1e-3)
    np.testing.assert_allclose(nifti_affine(vol), img.affine, atol=1e-3)

    simg = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(simg))
    spacing, origin, direction = vol.itk_geometry()
    np.testing.assert_allclose(spacing, simg.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(origin, simg.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(direction, simg.GetDirection(), atol=1e-3)
    # the same voxel lands at the same place in both libraries
    corner = np.array(vol.shape) - 1
    np.testing.assert_allclose(
        vol.world(corner), simg.TransformIndexToPhysicalPoint([int(i) for i in corner[::-1]]), atol=1e-3
    )


@pytest.mark.shared_data
def test_shared_files_modality_and_axcodes() -> None:
    ct = read_nifti(_shared_file("ct_3mm.nii.gz"))
    seg = read_nifti(_shared_file("seg_3mm.nii.gz"))
    mr = read_nifti(_shared_file("mr_3mm.nii.gz"))
    assert (ct.modality, seg.modality, mr.modality) == ("CT", "SEG", "MR")
    assert ct.shape == (112, 101, 122) and ct.array.dtype == np.int32
    # ct_3mm is stored RAS (nibabel: x->R, y->A, z->S): in array order (z, y, x) that is S, A, R
    nibabel_codes = nib.aff2axcodes(nib.load(_shared_file("ct_3mm.nii.gz")).affine)  # for x, y, z
    assert axcodes(ct) == ("S", "A", "R") == tuple(reversed(nibabel_codes))
    # mr_3mm is stored LPS: (z, y, x) -> S, P, L, like a DICOM axial series
    assert axcodes(mr) == ("S", "P", "L")
    # the label map shares the CT's grid (first 30 slices)
    np.testing.assert_allclose(seg.affine, ct.affine, atol=1e-4)
    assert seg.shape == (30, 101, 122)


@pytest.mark.shared_data
def test_shared_ct_round_trip_and_truncation(tmp_path: Path) -> None:
    src = _shared_file("ct_3mm.nii.gz")
    ct = read_nifti(src)
    write_nifti(ct, tmp_path / "ct.nii.gz")
    assert_same_volume(read_nifti(tmp_path / "ct.nii.gz"), ct, tol=1e-4)

    cut = tmp_path / "ct_cut.nii.gz"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"ct_cut\.nii\.gz"):
        read_nifti(cut)
