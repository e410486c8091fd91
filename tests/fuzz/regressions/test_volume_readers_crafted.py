"""Crafted NIfTI, NRRD / MetaImage, zip and DICOM inputs: one ``ctlens: error:`` line from ``ctlens convert``.

Each case is a valid small file with one header field pushed where the fuzz harness found (or could find) a
failure: an unknown NIfTI units code (a raw ``KeyError``), a MetaImage ``NDims = 1000`` (MetaIO overflowed its
arrays: the process died of a segmentation fault), a detached header naming ``.`` as its data file (an
``UnboundLocalError``), plus declared sizes far beyond the data, zip members outside the folder, and DICOM
elements that contradict the pixel data.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_run import assert_one_line_error, run_cli
from gen_dicom import _dataset, _write, dicom_seed, with_nesting
from gen_volume import _meta_header, _meta_lines, _nrrd_header, _nrrd_lines, _voxels, nifti_seed


def _convert(path: Path, *must: str) -> str:
    out = path.with_name("out.nii.gz")
    line = assert_one_line_error(run_cli("convert", str(path), str(out)), path.name, *must)
    assert not out.exists()
    return line


def _result_or_error(path: Path) -> None:
    """A lenient reader may read an odd but decodable header: then a valid file out; else one error line."""
    out = path.with_name("out.nii.gz")
    result = run_cli("convert", str(path), str(out))
    if result.exit_code == 0:
        assert out.exists() and "Traceback" not in result.stderr
    else:
        assert_one_line_error(result, path.name)
        assert not out.exists()


def _nifti(tmp_path: Path, name: str, fmt: str, offset: int, value: float, gz: bool = False) -> Path:
    buf = bytearray(nifti_seed())
    struct.pack_into(fmt, buf, offset, value)
    path = tmp_path / (name + (".nii.gz" if gz else ".nii"))
    path.write_bytes(gzip.compress(bytes(buf)) if gz else bytes(buf))
    return path


def test_valid_seed_converts(tmp_path: Path) -> None:
    path = tmp_path / "ok.nii"
    path.write_bytes(nifti_seed())
    assert run_cli("convert", str(path), str(tmp_path / "ok.nii.gz")).exit_code == 0


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_unknown_units_code(tmp_path: Path, gz: bool) -> None:
    _convert(_nifti(tmp_path, "units", "<b", 123, -81, gz), "xyzt_units")


@pytest.mark.parametrize(
    ("field", "fmt", "offset", "value"),
    [
        ("dim0", "<h", 40, 8),
        ("dim1", "<h", 42, 32767),
        ("dim1_negative", "<h", 42, -5),
        ("datatype", "<h", 70, 32767),
        ("datatype_complex", "<h", 70, 32),
        ("vox_offset", "<f", 108, 3.4e38),
        ("vox_offset_nan", "<f", 108, float("nan")),
        ("pixdim_nan", "<f", 80, float("nan")),
        ("srow_inf", "<f", 280, float("inf")),
        ("sizeof_hdr", "<i", 0, 12345),
    ],
)
def test_nifti_header_fields_at_extremes(tmp_path: Path, field: str, fmt: str, offset: int, value: float) -> None:
    path = _nifti(tmp_path, field, fmt, offset, value)
    if field in ("pixdim_nan", "srow_inf", "sizeof_hdr"):  # used only by some affines / repaired by nibabel
        _result_or_error(path)
        return
    _convert(path)


def test_nifti_gz_declaring_a_huge_volume(tmp_path: Path) -> None:
    buf = bytearray(nifti_seed())
    struct.pack_into("<8h", buf, 40, 3, 32767, 32767, 32767, 1, 1, 1, 1)
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(bytes(buf)))
    _convert(path)


def _itk_file(folder: Path, name: str, field: str, value: str, gz: bool = False) -> Path:
    """The seed NRRD (``name`` ending in .nrrd) or MetaImage (.mha) file with header ``field`` set to ``value``."""
    nrrd = name.endswith(".nrrd")
    lines = _nrrd_lines(gz, None) if nrrd else _meta_lines(gz, "LOCAL")
    lines[field] = value
    path = folder / name
    path.write_bytes((_nrrd_header(lines) if nrrd else _meta_header(lines)) + _voxels(gz))
    return path


def test_metaimage_with_1000_axes_does_not_crash(tmp_path: Path) -> None:
    _convert(_itk_file(tmp_path, "axes.mha", "NDims", "1000", gz=True), "NDims")


def test_nrrd_with_too_many_dimensions(tmp_path: Path) -> None:
    lines = _nrrd_lines(False, None)
    lines["dimension"] = "17"
    path = tmp_path / "dims.nrrd"
    path.write_bytes(_nrrd_header(lines) + _voxels(False))
    _convert(path, "dimension")


@pytest.mark.parametrize("value", [".", "./", "LIST\n."])
def test_detached_header_naming_its_own_folder(tmp_path: Path, value: str) -> None:
    (tmp_path / "v.raw").write_bytes(_voxels(False))
    path = tmp_path / "folder.nhdr"
    path.write_bytes(_nrrd_header(_nrrd_lines(False, value)))
    _convert(path)


@pytest.mark.parametrize("sizes", ["4294967296 4294967296 2", "-1 3 2", "99999999999999999999 1 1", "0 3 2"])
def test_nrrd_sizes_beyond_the_data(tmp_path: Path, sizes: str) -> None:
    lines = _nrrd_lines(True, None)
    lines["sizes"] = sizes
    path = tmp_path / "sizes.nrrd"
    path.write_bytes(_nrrd_header(lines) + _voxels(True))
    _convert(path)


def test_zip_member_outside_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.dcm", dicom_seed())
    _convert(path)


@pytest.mark.parametrize("name", ["", ".", "/"])
def test_zip_member_without_a_name(tmp_path: Path, name: str) -> None:
    """Found by the harness: a member named "" made ``ZipInfo.is_dir`` raise IndexError."""
    from ctlens.core.errors import UnsafeArchiveError
    from ctlens.io.archive import safe_extract_zip

    path = tmp_path / "noname.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.dcm", dicom_seed())
        info = zipfile.ZipInfo("x")
        info.filename = name
        zf.writestr(info, dicom_seed())
    with pytest.raises(UnsafeArchiveError, match="noname.zip"):
        safe_extract_zip(path, tmp_path / "out")
    _convert(path)


def test_zip_member_declaring_a_huge_size(tmp_path: Path) -> None:
    path = tmp_path / "sizes.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", dicom_seed())
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 0xFFFFFFF0)  # uncompressed size of the central record
    path.write_bytes(bytes(data))
    _convert(path)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("Rows", 65535),
        ("Columns", 0),
        ("BitsAllocated", 33),
        ("BitsAllocated", 0),
        ("SamplesPerPixel", 0),
        ("NumberOfFrames", 1000),
    ],
)
def test_dicom_image_elements_contradicting_the_pixel_data(tmp_path: Path, keyword: str, value: int) -> None:
    ds = _dataset(6, 5, 0.0)
    setattr(ds, keyword, value)
    path = tmp_path / f"{keyword}.dcm"
    path.write_bytes(_write(ds, "explicit"))
    if value == 0 and keyword != "Columns":  # a reader may take the size from the pixel data: result or error
        _result_or_error(path)
    else:
        _convert(path)


@pytest.mark.parametrize("depth", [100, 20000])
def test_dicom_deeply_nested_sequences(tmp_path: Path, depth: int) -> None:
    from pydicom.sequence import Sequence

    ds = _dataset(6, 5, 0.0)
    ds.ReferencedImageSequence = Sequence([])
    path = tmp_path / "nested.dcm"
    path.write_bytes(with_nesting(_write(ds, "explicit"), depth))
    _result_or_error(path)


def test_dicom_negative_rows_through_an_odd_vr(tmp_path: Path) -> None:
    from pydicom.dataelem import DataElement

    ds = _dataset(6, 5, 0.0)
    ds[0x00280010] = DataElement(0x00280010, "SS", -1)  # Rows written as a signed short
    path = tmp_path / "rows.dcm"
    path.write_bytes(_write(ds, "explicit"))
    _convert(path)


def test_dicom_truncated_in_the_pixel_data(tmp_path: Path) -> None:
    path = tmp_path / "cut.dcm"
    path.write_bytes(dicom_seed()[:-20])
    _convert(path)


def test_dicom_deflated_stream_damaged(tmp_path: Path) -> None:
    data = bytearray(dicom_seed("deflate"))
    data[-30:] = bytes(30)
    path = tmp_path / "deflate.dcm"
    path.write_bytes(bytes(data))
    _convert(path)


def _with_text_element(ds: object, tag: bytes, vr: bytes, value: str) -> bytes:
    """``ds`` written with element ``tag`` (its 4 bytes, little endian) holding ``value`` as raw text of ``vr``.

    pydicom refuses to write such values itself: a placeholder of the same length is written, then replaced.
    """
    from pydicom.dataelem import DataElement

    text = (value + " " * (len(value) % 2)).encode()
    placeholder = b"9" * len(text)
    number = int.from_bytes(tag[:2], "little") << 16 | int.from_bytes(tag[2:], "little")
    ds[number] = DataElement(number, vr.decode(), placeholder.decode())  # type: ignore[index]
    head = tag + vr + struct.pack("<H", len(text))
    data = _write(ds, "explicit")
    assert data.count(head + placeholder) == 1
    return data.replace(head + placeholder, head + text)


@pytest.mark.parametrize("value", ["nan", "1e308", "12.5", "-3", "0", "17", "x"])
def test_dicom_bits_stored_as_text(tmp_path: Path, value: str) -> None:
    """BitsStored (a US) written as an IS string: anything but an integer in 1..BitsAllocated is refused."""
    path = tmp_path / "bits.dcm"
    path.write_bytes(_with_text_element(_dataset(6, 5, 0.0), b"\x28\x00\x01\x01", b"IS", value))
    _convert(path, "BitsStored")


@pytest.mark.parametrize("value", ["nan", "1e308", "65"])
def test_dicom_bits_allocated_as_text(tmp_path: Path, value: str) -> None:
    path = tmp_path / "alloc.dcm"
    path.write_bytes(_with_text_element(_dataset(6, 5, 0.0), b"\x28\x00\x00\x01", b"IS", value))
    _convert(path, "BitsAllocated")


@pytest.mark.parametrize("value", ["nan", "1e-320", "-32768", "0", "inf", "1e308", "x"])
def test_dicom_single_slice_with_unusable_thickness(tmp_path: Path, value: str) -> None:
    """A single slice's SliceThickness that is no size: 1 mm is used (with a warning), the file converts."""
    from ctlens.io import load

    path = tmp_path / "thick.dcm"
    path.write_bytes(_with_text_element(_dataset(6, 5, 0.0), b"\x18\x00\x50\x00", b"DS", value))
    out = tmp_path / "out.nii.gz"
    result = run_cli("convert", str(path), str(out))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert load(out).spacing[0] == pytest.approx(1.0)


def test_dicom_single_slice_with_usable_thickness(tmp_path: Path) -> None:
    from ctlens.io import load

    path = tmp_path / "thick.dcm"
    path.write_bytes(_with_text_element(_dataset(6, 5, 0.0), b"\x18\x00\x50\x00", b"DS", "2.5"))
    out = tmp_path / "out.nii.gz"
    assert run_cli("convert", str(path), str(out)).exit_code == 0
    assert load(out).spacing[0] == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("tag", "value", "field"),
    [
        (b"\x20\x00\x32\x00", "0\\0\\nan", "ImagePositionPatient"),
        (b"\x20\x00\x32\x00", "0\\0\\1e300", "ImagePositionPatient"),
        (b"\x20\x00\x37\x00", "0\\0\\0\\0\\0\\0", "ImageOrientationPatient"),
        (b"\x20\x00\x37\x00", "1\\0\\0\\1\\0\\0", "ImageOrientationPatient"),
        (b"\x20\x00\x37\x00", "1\\0\\0\\0\\inf\\0", "ImageOrientationPatient"),
        (b"\x28\x00\x30\x00", "0.7\\0", "PixelSpacing"),
        (b"\x28\x00\x30\x00", "-0.7\\0.7", "PixelSpacing"),
        (b"\x28\x00\x30\x00", "1e-320\\0.7", "PixelSpacing"),
        (b"\x28\x00\x30\x00", "nan\\0.7", "PixelSpacing"),
    ],
)
def test_dicom_geometry_that_places_nothing(tmp_path: Path, tag: bytes, value: str, field: str) -> None:
    """Non-finite, far-off, degenerate or denormal positions, orientations and spacings: one error naming them."""
    path = tmp_path / "geometry.dcm"
    path.write_bytes(_with_text_element(_dataset(6, 5, 0.0), tag, b"DS", value))
    _convert(path, field)


def test_dicom_bits_allocated_as_unknown_vr(tmp_path: Path) -> None:
    us = b"\x28\x00\x00\x01US\x02\x00\x10\x00"  # BitsAllocated = 16, explicit VR little endian
    un = b"\x28\x00\x00\x01UN\x00\x00\x02\x00\x00\x00\x17\x16"  # the same element as 2 unknown bytes
    data = dicom_seed()
    assert us in data
    path = tmp_path / "bitsalloc.dcm"
    path.write_bytes(data.replace(us, un, 1))
    _convert(path)


def test_dicom_pixel_data_as_a_number(tmp_path: Path) -> None:
    """A three-slice series whose first slice has PixelData written with VR UL (a number, not bytes) behind deeply
    nested sequences, so the fast parser hands it to pydicom: as `make fuzz` found it (a raw TypeError before)."""
    from pydicom.dataelem import DataElement
    from pydicom.sequence import Sequence

    series = tmp_path / "series"
    series.mkdir()
    for k in range(3):
        ds = _dataset(6, 5, float(k))
        data = _write(ds, "explicit")
        if k == 0:
            ds.ReferencedImageSequence = Sequence([])
            ds[0x7FE00010] = DataElement(0x7FE00010, "UL", 2147483647)
            data = with_nesting(_write(ds, "explicit"), 100)
        (series / f"{k}.dcm").write_bytes(data)
    _convert(series, "PixelData")


def _metaio(matrix: str, dim_size: str, data: bytes, compressed: bool) -> bytes:
    """A MetaImage header (the fields of the fuzzed inputs, with ``matrix`` and ``dim_size``) for ``data``."""
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        f"CompressedData = {compressed}",
        f"TransformMatrix = {matrix}",
        "Offset = 0 0 0",
        "ElementSpacing = 0.7 0.7 2",
        f"DimSize = {dim_size}",
        "ElementType = MET_SHORT",
    ]
    if compressed:
        lines.append(f"CompressedDataSize = {len(data)}")
    return "\n".join(lines).encode() + b"\n"


_VOXELS = np.arange(24, dtype="<i2").tobytes()  # 4 x 3 x 2 shorts
_IDENTITY = "1 0 0 0 1 0 0 0 1"


def _itk_case(case: str, folder: Path) -> Path:
    """The inputs a 10-minute `make fuzz` run of the NRRD/MHA reader found, rebuilt field for field."""
    if case == "nrrd_sizes_wrap":  # SimpleITK read (2, 0, 1) and every check passed; teem then filled 17 GB
        head = (
            "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 2  4294967296 1e9\n"
            "space directions: (0.7,0,0) (0,0.7,0) (0,0,2)\nspace origin: (0,0,0)\nendian: little\nencoding: gzip\n\n"
        )
        path = folder / "v.nrrd"
        path.write_bytes(head.encode() + gzip.compress(_VOXELS))
    elif case == "mha_direction_1e308":  # nibabel's HeaderDataError escaped
        path = folder / "v.mha"
        matrix = "0 1e308 0  1e308 x 1e-320 1e308 (nan,1,1)"
        path.write_bytes(_metaio(matrix, "4 3 2", _VOXELS, False) + _local(_VOXELS))
    elif case == "mha_direction_all_1e308":  # ITK's reader looped (over 100 s) on the matrix before reading a voxel
        path = folder / "v.mha"
        raw = gzip.compress(_VOXELS)
        matrix = "1e308 1e308 1e308 1e308 1e308  x (0,0,0) x"
        path.write_bytes(_metaio(matrix, "4 3 2", raw, True) + _local(raw))
    else:
        raw = gzip.compress(_VOXELS)
        if case == "mhd_dimsize_1e9":  # the fuzz worker was killed for memory
            head = _metaio(_IDENTITY, "1 1e9  1", raw, True)
        else:  # "mhd_spacing_7e307"
            head = _metaio("1e308 1 -1 -1 -0  1e308 1e-320 inf", "4 3 2", raw, True)
        (folder / "v.raw").write_bytes(raw)
        path = folder / "v.mhd"
        path.write_bytes(head + b"ElementDataFile = v.raw\n")
    return path


def _local(data: bytes) -> bytes:
    return b"ElementDataFile = LOCAL\n" + data


@pytest.mark.parametrize(
    ("case", "must"),
    [
        ("nrrd_sizes_wrap", "sizes"),
        ("mha_direction_1e308", "geometry"),
        ("mha_direction_all_1e308", "geometry"),
        ("mhd_dimsize_1e9", "DimSize"),
        ("mhd_spacing_7e307", "geometry"),
    ],
)
def test_itk_inputs_make_fuzz_found(tmp_path: Path, case: str, must: str) -> None:
    """NRRD/MHA headers fuzz runs found (a 17 GB fill, a kill for memory, a raw nibabel error, a hang): one line."""
    _convert(_itk_case(case, tmp_path), must)


def test_zip_member_name_with_a_newline(tmp_path: Path) -> None:
    """A zip whose symbolic-link member is named with a line end and control characters (found by `make fuzz`):
    the error stays one line, the name shown escaped."""
    path = tmp_path / "input.zip"
    with zipfile.ZipFile(path, "w") as zf:
        link = zipfile.ZipInfo("b\u00e3z\n7\x13\u00b5\x13")
        link.external_attr = 0o120777 << 16  # a symbolic link
        zf.writestr(link, "target")
    line = _convert(path, "symbolic link")
    assert "\\n" in line


def _zip_needing_version(tmp_path: Path, version: int) -> Path:
    """A zip whose central directory says a member needs zip version ``version`` / 10 to extract."""
    path = tmp_path / "input.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("0.dcm", b"not dicom")
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 6, version)  # "version needed to extract"
    path.write_bytes(bytes(data))
    return path


def test_zip_needing_an_unknown_zip_version(tmp_path: Path) -> None:
    """A member marked as needing zip version 25.5 (found by `make fuzz`): zipfile raised NotImplementedError while
    listing the archive; now one error line, from the CLI and from the service's extraction."""
    from ctlens.core.errors import CTLensError
    from ctlens.io.archive import safe_extract_zip

    path = _zip_needing_version(tmp_path, 255)
    _convert(path, "zip file version 25.5")
    with pytest.raises(CTLensError, match="zip file version"):
        safe_extract_zip(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# One spacing rule for every reader (``ctlens.core.volume.spacing_in_range``): the CT-RATE metadata fuzz run found a
# ZSpacing of 1e-320 reaching nibabel, which could not decompose the affine on save. The same value in any format.


def test_nifti_with_a_subnormal_voxel_size(tmp_path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((4, 3, 2), np.int16), np.diag([1e-40, 0.7, 2.0, 1.0]))
    img.header.set_qform(img.affine, code=1)
    img.header.set_sform(img.affine, code=1)
    path = tmp_path / "tiny.nii"
    nib.save(img, path)
    _convert(path, "voxel sizes")


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("tiny.nrrd", "space directions", "(1e-320,0,0) (0,0.7,0) (0,0,2)"),
        ("tiny.mha", "ElementSpacing", "0.7 1e-320 2"),
    ],
)
def test_itk_image_with_a_subnormal_spacing(tmp_path: Path, name: str, field: str, value: str) -> None:
    _convert(_itk_file(tmp_path, name, field, value), "spacing")


def test_dicom_with_a_subnormal_pixel_spacing(tmp_path: Path) -> None:
    """A DICOM pixel spacing of 1e-320 is no size: a volume with a warning, or one error line."""
    import pydicom

    path = tmp_path / "tiny.dcm"
    path.write_bytes(dicom_seed())
    ds = pydicom.dcmread(path)
    ds.PixelSpacing = ["1e-320", "1e-320"]
    ds.save_as(path)
    _result_or_error(path)
    out = tmp_path / "out.nii.gz"
    if out.exists():
        import nibabel as nib

        zooms = nib.load(out).header.get_zooms()
        assert all(z >= 1e-6 for z in zooms)


@pytest.mark.parametrize("vr", [b"EI", b"\x00\x00"])
def test_dicom_series_with_a_file_meta_element_of_unknown_vr(tmp_path: Path, vr: bytes) -> None:
    """A deflated slice whose transfer syntax element (0002,0010) is written with an unknown VR (found by `make fuzz`):
    pydicom's NotImplementedError escaped the deflate-bomb check; now the slice is skipped as unreadable."""
    folder = tmp_path / "series"
    folder.mkdir()
    for k in range(3):
        data = dicom_seed("deflate" if k == 1 else "explicit", k)
        if k == 1:
            at = data.index(b"\x02\x00\x10\x00UI")
            data = data[: at + 4] + vr + data[at + 6 :]
        (folder / f"{k}.dcm").write_bytes(data)
    _result_or_error(folder)


@pytest.mark.parametrize("vr", [b"TI", b"ZZ"])
def test_dicom_element_of_unknown_vr_is_read_as_un(tmp_path: Path, vr: bytes) -> None:
    """StudyInstanceUID written with the VR 'TI', which DICOM does not define (found by `make fuzz`): pydicom raised
    NotImplementedError when the series rules read it; now it is read as UN, by its dictionary VR, and the file loads.
    """
    data = dicom_seed("explicit")
    at = data.index(b"\x20\x00\x0d\x00UI")
    path = tmp_path / "odd_vr.dcm"
    path.write_bytes(data[: at + 4] + vr + data[at + 6 :])
    result = run_cli("convert", str(path), str(tmp_path / "out.nii.gz"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out.nii.gz").exists()
