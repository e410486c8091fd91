"""The one-pass header parser (ctlens.io.dicom_parse) reads what pydicom reads, or leaves the file to pydicom.

Every file is compared with ``pydicom.dcmread(path, defer_size=...)``: the same elements with the same VRs and
values (sequences, deferred values, pixel data and file meta included), and each fact equal to ``plain`` of
pydicom's value. Files are written in every uncompressed encoding, with undefined-length sequences (nested, private,
implicit VR), other character sets, big private values, odd but legal spacing in values; unusual files must come
back as ``None`` (read by pydicom), never half-read.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import can_encode, write_ct_series, write_multiframe_ct
from mr_factory import write_enhanced_mr, write_mosaic_series
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from ctlens.io.dicom_parse import DEFER_BYTES, FACT_KEYWORDS, parse_file, plain

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def assert_same_as_pydicom(path: Path) -> None:
    parsed = parse_file(path)
    assert parsed is not None, f"{path.name}: the fast parser gave up on an ordinary file"
    ref = pydicom.dcmread(path, defer_size=DEFER_BYTES)
    ds = parsed.dataset
    assert [e.tag for e in ds] == [e.tag for e in ref]
    for elem in ref:
        assert ds[elem.tag].VR == elem.VR, (path.name, elem.tag)
        assert ds[elem.tag].value == elem.value, (path.name, elem.tag)
    assert ds.file_meta == ref.file_meta
    assert ds.original_encoding == ref.original_encoding
    assert ds.original_character_set == ref.original_character_set
    for keyword in FACT_KEYWORDS:
        if keyword in parsed.facts:
            assert parsed.facts[keyword] == plain(ref.get(keyword)), (path.name, keyword)
    if "PixelData" in ref:
        with open(path, "rb") as handle:
            handle.seek(parsed.pixel_offset)
            if parsed.pixel_length != 0xFFFFFFFF:
                assert handle.read(parsed.pixel_length) == ref.PixelData
        assert ds.PixelData == ref.PixelData


def _rewrite(src: Path, dst: Path, change, implicit: bool = False, little: bool = True) -> Path:
    ds = pydicom.dcmread(src)
    change(ds)
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    )
    if not little:
        ds.PixelData = ds.pixel_array.byteswap().tobytes()
    fresh = Dataset()  # no original encoding: pydicom writes it in the one asked for
    for elem in ds:
        fresh.add(elem)
    fresh.file_meta = ds.file_meta
    fresh.save_as(dst, implicit_vr=implicit, little_endian=little, enforce_file_format=True)
    return dst


def _nested_sequences(ds: Dataset) -> None:
    """Undefined-length sequences (nested, private, one empty item) and text with spaces around values."""
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3.4"
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.5"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    ds["ReferencedImageSequence"].is_undefined_length = True
    for it in ds.ReferencedImageSequence:
        it.is_undefined_length_sequence_item = True
    ds["ReferencedImageSequence"].value[0]["PurposeOfReferenceCodeSequence"].is_undefined_length = True
    block = ds.private_block(0x0029, "CTLENS TEST", create=True)
    block.add_new(0x10, "SQ", Sequence([copy.deepcopy(inner)]))
    ds[block.get_tag(0x10)].is_undefined_length = True
    block.add_new(0x11, "OB", bytes(DEFER_BYTES + 10))  # deferred, skipped without reading
    block.add_new(0x12, "LO", "after the big value")
    ds.ImageType = ["ORIGINAL", "PRIMARY ", "AXIAL"]
    ds.SeriesDescription = "  Thorax  "
    ds.EchoTime = " 2.460 "


def _charset(ds: Dataset) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SeriesDescription = "Thorax \u00e9t\u00e9"
    ds.ConvolutionKernel = "B\u00e9"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parse")
    write_ct_series(root / "plain", n_slices=2, padding_value=-2000)
    write_ct_series(root / "unsigned", n_slices=2, padding_value=0, signed=False, slope=0.5, bits_stored=12)
    write_ct_series(root / "implicit", n_slices=2, transfer_syntax=ImplicitVRLittleEndian, padding_value=-2000)
    write_multiframe_ct(root / "mf" / "mf.dcm")
    write_mosaic_series(root / "mosaic", n_volumes=1)
    write_enhanced_mr(root / "emr" / "e.dcm")
    for syntax in (JPEG2000Lossless, RLELossless):
        if can_encode(syntax):
            write_ct_series(root / syntax, n_slices=2, transfer_syntax=syntax)
    return root


def test_every_factory_file_reads_as_pydicom(series: Path) -> None:
    files = sorted(p for p in series.rglob("*") if p.is_file())
    assert len(files) >= 9
    for path in files:
        assert_same_as_pydicom(path)


@pytest.mark.parametrize(("implicit", "little"), [(False, True), (True, True), (False, False)])
@pytest.mark.parametrize("change", [_nested_sequences, _charset])
def test_encodings_sequences_charsets(series: Path, tmp_path: Path, implicit: bool, little: bool, change) -> None:
    src = sorted((series / "unsigned").iterdir())[0]
    path = _rewrite(src, tmp_path / "x.dcm", change, implicit, little)
    assert_same_as_pydicom(path)
    parsed = parse_file(path)
    if change is _charset:  # non-ASCII text is left to pydicom, the other facts are read
        assert "SeriesDescription" not in parsed.facts and parsed.facts["Modality"] == "CT"
    else:
        assert parsed.facts["ImageType"] == ("ORIGINAL", "PRIMARY", "AXIAL")
        assert parsed.facts["EchoTime"] == "2.460"
    rows = parsed.facts["Rows"]
    assert isinstance(rows, int) and rows == pydicom.dcmread(path).Rows
    if not little:
        raw = np.fromfile(path, ">u2", rows * parsed.facts["Columns"], offset=parsed.pixel_offset).reshape(rows, -1)
        assert np.array_equal(raw, pydicom.dcmread(path).pixel_array)


def test_unusual_files_are_left_to_pydicom(series: Path, tmp_path: Path) -> None:
    src = sorted((series / "plain").iterdir())[0]
    data = src.read_bytes()
    (tmp_path / "bare.dcm").write_bytes(data[132:])  # no preamble
    assert parse_file(tmp_path / "bare.dcm") is None
    (tmp_path / "cut.dcm").write_bytes(data[:400])  # truncated within the header
    assert parse_file(tmp_path / "cut.dcm") is None
    (tmp_path / "text.dcm").write_bytes(b"not dicom at all" * 20)
    assert parse_file(tmp_path / "text.dcm") is None
    assert parse_file(tmp_path / "missing.dcm") is None
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert parse_file(tmp_path / "deflated.dcm") is None


def test_pixel_data_cut_short_is_still_parsed(series: Path, tmp_path: Path) -> None:
    """A header that is whole but pixel data cut short: parsed (the decoder reports the truncation, by file)."""
    src = sorted((series / "plain").iterdir())[0]
    parsed = parse_file(src)
    (tmp_path / "short.dcm").write_bytes(src.read_bytes()[: parsed.pixel_offset + 10])
    short = parse_file(tmp_path / "short.dcm")
    assert short is not None and short.pixel_offset == parsed.pixel_offset


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")
def test_shared_files_read_as_pydicom() -> None:
    files = [p for p in sorted(SHARED.rglob("*")) if p.is_file() and parse_file(p) is not None]
    assert len(files) >= 100
    for path in files[::7]:
        assert_same_as_pydicom(path)


@pytest.mark.skipif(not can_encode(JPEG2000Lossless), reason="no JPEG 2000 encoder installed")
@pytest.mark.parametrize("signed", [True, False])
def test_jpeg2000_codestream_at_offset_decodes_as_pydicom(tmp_path: Path, signed: bool) -> None:
    """The reader's own JPEG 2000 path (codestream cut out at the noted offset) gives pydicom's stored values."""
    from ctlens.io.dicom_headers import read_slice_refs
    from ctlens.io.dicom_pixels import _j2k_plane
    from ctlens.io.dicom_source import DicomSource

    write_ct_series(tmp_path / "j", n_slices=3, transfer_syntax=JPEG2000Lossless, signed=signed, bits_stored=12)
    with DicomSource(tmp_path / "j") as src:
        refs, _ = read_slice_refs(src.files)
    assert len(refs) == 3
    for ref in refs:
        plane = _j2k_plane(ref)
        expected = pydicom.dcmread(ref.file.path).pixel_array
        assert plane is not None and plane.dtype == expected.dtype and np.array_equal(plane, expected)


@pytest.mark.filterwarnings("ignore")  # pydicom warns about the damage it reads around
def test_damaged_headers_never_raise(series: Path, tmp_path: Path) -> None:
    """Bytes changed or cut anywhere in a header: the parser gives up (None) or reads it; refs are built or the file
    is skipped with a reason naming what is wrong, never an exception."""
    import random

    from ctlens.io.dicom_headers import read_slice_refs
    from ctlens.io.dicom_source import CandidateFile

    sources = [sorted((series / name).iterdir())[0] for name in ("plain", "implicit", "unsigned")]
    sources.append(series / "mf" / "mf.dcm")
    rng = random.Random(7)
    path = tmp_path / "damaged.dcm"
    for _ in range(300):
        data = bytearray(rng.choice(sources).read_bytes()[:6000])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(132, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(132, len(data))]
        path.write_bytes(bytes(data))
        parse_file(path)
        refs, skipped = read_slice_refs([CandidateFile(path, "damaged.dcm")])
        assert len(refs) + len(skipped) >= 1
        assert all(reason for _, reason in skipped)
