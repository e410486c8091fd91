"""NRRD / MetaImage reading and writing through SimpleITK."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ctlens.core.errors import CorruptFileError, CTLensError, InputNotFoundError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io import itk_image as itk_module
from ctlens.io.itk_image import read_itk_image, short_reason, write_itk_image
from ctlens.io.nifti import read_nifti


def _data_dir() -> Path:
    env = os.environ.get("CTLENS_DATA_DIR")
    return Path(env) if env else Path(__file__).parents[2] / ".." / "shared" / "data"


def _rotation(axis: list[float], degrees: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    t = np.deg2rad(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def oblique_volume(dtype: type = np.int16) -> Volume:
    rng = np.random.default_rng(11)
    array = rng.integers(-1024, 2000, size=(5, 6, 7)).astype(dtype)
    direction = _rotation([0.2, 0.9, -0.4], 31.0)[:, [2, 1, 0]]
    direction[:, 1] *= -1  # and left-handed
    return Volume(array, spacing=(2.5, 0.7, 0.9), origin=(-120.25, 33.5, 87.125), direction=direction)


def assert_same_volume(got: Volume, want: Volume, tol: float = 1e-5) -> None:
    assert got.array.dtype == want.array.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.array, want.array)
    np.testing.assert_allclose(got.affine, want.affine, atol=tol)
    np.testing.assert_allclose(got.direction, want.direction, atol=tol)


# ----------------------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nhdr", ".mhd"])
@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_oblique_volume(tmp_path: Path, suffix: str, compress: bool) -> None:
    vol = oblique_volume()
    path = tmp_path / f"vol{suffix}"
    write_itk_image(vol, path, compress=compress)
    got = read_itk_image(path)
    assert_same_volume(got, vol)
    assert got.modality == "CT" and got.meta["modality_source"] == "file"
    assert got.meta["source_format"] == ("nrrd" if suffix in (".nrrd", ".nhdr") else "metaimage")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert path.name in names
    assert not [n for n in names if n.startswith(".")]  # no temp folders left
    assert len(names) == (1 if suffix in (".nrrd", ".mha") else 2)  # detached header + data file


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_round_trip_keeps_dtype(tmp_path: Path, dtype: type) -> None:
    vol = Volume(np.arange(24).reshape(2, 3, 4).astype(dtype), spacing=(3, 2, 1), modality="MR")
    write_itk_image(vol, tmp_path / "a.mha")
    got = read_itk_image(tmp_path / "a.mha")
    assert_same_volume(got, vol)
    assert got.modality == "MR"


def test_written_file_matches_simpleitk(tmp_path: Path) -> None:
    vol = oblique_volume()
    write_itk_image(vol, tmp_path / "v.nrrd")
    img = sitk.ReadImage(str(tmp_path / "v.nrrd"))
    spacing, origin, direction = vol.itk_geometry()
    np.testing.assert_allclose(img.GetSpacing(), spacing, atol=1e-9)
    np.testing.assert_allclose(img.GetOrigin(), origin, atol=1e-9)
    np.testing.assert_allclose(img.GetDirection(), direction, atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), vol.array)
    np.testing.assert_allclose(img.TransformIndexToPhysicalPoint((6, 5, 4)), vol.world((4, 5, 6)), atol=1e-9)


def test_file_from_another_writer(tmp_path: Path) -> None:
    arr = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.6, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    img.SetMetaData("PatientName", "DOE^JANE")
    sitk.WriteImage(img, str(tmp_path / "other.nrrd"))
    got = read_itk_image(tmp_path / "other.nrrd")
    np.testing.assert_array_equal(got.array, arr)
    assert got.spacing == (2.0, 0.6, 0.5) and got.origin == (1.0, 2.0, 3.0)
    assert got.modality == "MR" and got.meta["modality_source"] == "heuristic"
    assert "DOE" not in repr(got.meta)


def test_2d_image_becomes_one_slice(tmp_path: Path) -> None:
    img = sitk.GetImageFromArray(np.arange(12, dtype=np.int16).reshape(3, 4) - 1000)
    img.SetSpacing((0.5, 0.25))
    img.SetOrigin((10.0, 20.0))
    sitk.WriteImage(img, str(tmp_path / "slice.mha"))
    got = read_itk_image(tmp_path / "slice.mha")
    assert got.shape == (1, 3, 4) and got.spacing == (1.0, 0.25, 0.5) and got.origin == (10.0, 20.0, 0.0)
    np.testing.assert_array_equal(got.array[0], np.arange(12).reshape(3, 4) - 1000)
    assert got.meta["source_ndim"] == 2


def test_caller_modality_wins(tmp_path: Path) -> None:
    write_itk_image(oblique_volume(), tmp_path / "v.mha")
    got = read_itk_image(tmp_path / "v.mha", modality="PT")
    assert got.modality == "PT" and got.meta["modality_source"] == "caller"


def test_bool_mask_is_written_as_uint8(tmp_path: Path) -> None:
    mask = Volume(np.eye(4, dtype=bool)[None], modality="SEG")
    write_itk_image(mask, tmp_path / "m.nrrd")
    got = read_itk_image(tmp_path / "m.nrrd")
    assert got.array.dtype == np.uint8 and got.modality == "SEG"
    np.testing.assert_array_equal(got.array, mask.array)


# ----------------------------------------------------------------------------------------------------------------
# refused and bad input


def test_vector_image_is_refused(tmp_path: Path) -> None:
    img = sitk.GetImageFromArray(np.zeros((2, 3, 4, 3), np.uint8), isVector=True)
    sitk.WriteImage(img, str(tmp_path / "rgb.mha"))
    with pytest.raises(UnsupportedFormatError, match=r"rgb\.mha.*3-component"):
        read_itk_image(tmp_path / "rgb.mha")


def test_4d_image_is_refused(tmp_path: Path) -> None:
    img = sitk.JoinSeries([sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16))] * 2)
    sitk.WriteImage(img, str(tmp_path / "t.nrrd"))
    with pytest.raises(UnsupportedFormatError, match=r"t\.nrrd.*4-D"):
        read_itk_image(tmp_path / "t.nrrd")


def test_text_file_named_nrrd(tmp_path: Path) -> None:
    path = tmp_path / "notes.nrrd"
    path.write_text("these are my notes, not an image\n")
    with pytest.raises(CorruptFileError, match=r"notes\.nrrd") as info:
        read_itk_image(path)
    message = str(info.value)
    assert "\n" not in message and ".cxx" not in message and "0x" not in message


@pytest.mark.parametrize("name", ["empty.mha", "empty.nrrd"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(CorruptFileError, match=name.replace(".", r"\.")):
        read_itk_image(tmp_path / name)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("compress", [True, False])
def test_truncated_file(tmp_path: Path, suffix: str, compress: bool) -> None:
    vol = Volume(np.random.default_rng(0).integers(-1000, 1000, size=(20, 30, 40)).astype(np.int16))
    path = tmp_path / f"cut{suffix}"
    write_itk_image(vol, path, compress=compress)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=f"cut\\{suffix}") as info:
        read_itk_image(path)
    assert "\n" not in str(info.value)


def test_mhd_without_its_data_file(tmp_path: Path) -> None:
    write_itk_image(oblique_volume(), tmp_path / "v.mhd", compress=False)
    (tmp_path / "v.raw").unlink()
    with pytest.raises(CorruptFileError, match=r"v\.mhd.*missing data file"):
        read_itk_image(tmp_path / "v.mhd")


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"nope\.mha"):
        read_itk_image(tmp_path / "nope.mha")
    with pytest.raises(UnsupportedFormatError, match=r"x\.nii"):
        read_itk_image(tmp_path / "x.nii")
    with pytest.raises(UnsupportedFormatError):
        write_itk_image(oblique_volume(), tmp_path / "x.png")


def test_short_reason_strips_cxx_noise() -> None:
    text = (
        "Exception thrown in SimpleITK ImageFileReader_Execute: /build/ITK/itkMetaImageIO.cxx:490:\n"
        "ITK ERROR: MetaImageIO(0x5640ad430080): File cannot be read: /d/a.mha for reading.\n"
        "Reason: No such file or directory"
    )
    assert short_reason(RuntimeError(text), "/d/a.mha") == "File cannot be read: the file for reading."


@pytest.mark.parametrize("suffix", [".nrrd", ".mhd"])
def test_write_into_missing_folder_leaves_nothing(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(CTLensError, match="does not exist"):
        write_itk_image(oblique_volume(), tmp_path / "missing" / f"v{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenWriter:
        def __init__(self) -> None:
            self.name = ""

        def SetFileName(self, name: str) -> None:
            self.name = name

        def SetImageIO(self, io: str) -> None:
            pass

        def SetUseCompression(self, flag: bool) -> None:
            pass

        def Execute(self, image: sitk.Image) -> None:
            Path(self.name).write_bytes(b"NRRD0004\ntype: short\n")
            raise RuntimeError("Exception thrown: /x.cxx:1:\nitk::ERROR: NrrdImageIO(0x1): Write: disk full")

    path = tmp_path / "v.nrrd"
    write_itk_image(oblique_volume(), path)
    before = path.read_bytes()
    monkeypatch.setattr(itk_module.sitk, "ImageFileWriter", BrokenWriter)
    with pytest.raises(CTLensError, match="disk full"):
        write_itk_image(Volume(np.zeros((1, 2, 2), np.int16)), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]


# ----------------------------------------------------------------------------------------------------------------
# the shared CT: NIfTI -> NRRD keeps SimpleITK's view of the geometry


@pytest.mark.shared_data
@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_shared_ct_converts_to_itk_formats(tmp_path: Path, suffix: str) -> None:
    src = _data_dir() / "totalsegmentator_example" / "ct_3mm.nii.gz"
    if not src.is_file():
        pytest.skip(f"shared test data not found: {src} (set CTLENS_DATA_DIR or provide ../shared/data)")
    ct = read_nifti(src)
    write_itk_image(ct, tmp_path / f"ct{suffix}")
    got = read_itk_image(tmp_path / f"ct{suffix}")
    assert_same_volume(got, ct, tol=1e-6)
    assert got.modality == "CT"
    ref, ours = sitk.ReadImage(str(src)), sitk.ReadImage(str(tmp_path / f"ct{suffix}"))
    np.testing.assert_allclose(ours.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(ours.GetSpacing(), ref.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(ours.GetDirection(), ref.GetDirection(), atol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(ref))
