"""DICOM inputs our structure-aware generator does not make: byte-mutated files, other codecs, odd series layouts.

Found by a byte-mutation campaign over single files of every shared series and synthetic files of every transfer
syntax (bit flips, interesting values over length fields, chunk deletion / duplication, splicing, truncation at
element boundaries, damage inside encapsulated fragments), each read alone and as one slice of a three-slice series,
and by series-layout attacks built with ``dicom_factory``. Each test builds its input; the oracle is the fuzz
invariant (:func:`fuzz_harness.check_input`: a volume or one CTLensError line naming the file), and where a volume
comes back, its values are checked too (a wrong volume is worse than an error).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import can_encode, write_ct_series, write_multiframe_ct
from fuzz_harness import check_input
from fuzz_readers import READERS
from gen_dicom import length_fields
from gen_volume import bundle
from pydicom.encaps import generate_frames
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

import ctlens.io
from ctlens.core.errors import CorruptFileError, UnsupportedFormatError

READ = READERS["dicom"].call
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _bytes(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _edit(path: Path, change) -> bytes:  # noqa: ANN001 - a callable on the data set
    ds = pydicom.dcmread(path)
    change(ds)
    return _bytes(ds)


def _series_bundle(files: list[bytes]) -> bytes:
    return bundle([("series/", b"")] + [(f"series/{i:04d}.dcm", data) for i, data in enumerate(files)])


def _fragment_span(data: bytes) -> tuple[int, int]:
    """Where the first encapsulated fragment's bytes lie in ``data`` (start, end)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    fragment = next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    start = data.index(fragment)
    return start, start + len(fragment)


# --------------------------------------------------------------------------- damaged encapsulated pixel data


@pytest.mark.parametrize("frames", [1, 3])
def test_damaged_rle_segments_are_one_error_line(tmp_path: Path, frames: int) -> None:
    """A run length that writes past the plane made pylibjpeg-rle panic (a Rust ``PanicException``, which is a
    BaseException): it escaped ``except Exception`` as a raw traceback. Every byte of the segments set to 0 or 0xFF
    (by turns) now gives a volume or one CorruptFileError naming the file."""
    if frames == 1:
        path = write_ct_series(tmp_path, n_slices=1, rows=4, cols=6, transfer_syntax=RLELossless, verify=False).paths[0]
    else:
        path = write_multiframe_ct(
            tmp_path / "mf.dcm", n_frames=frames, rows=4, cols=6, transfer_syntax=RLELossless, verify=False
        ).paths[0]
    data = path.read_bytes()
    start, end = _fragment_span(data)
    errors = 0
    for at in range(start + 64, end):  # after the 64-byte RLE header: the segments
        damaged = bytearray(data)
        damaged[at] = (0x00, 0xFF)[at % 2]
        outcome = check_input(READ, bytes(damaged), ".dcm")
        errors += outcome.error is not None
    assert errors  # the damage reached the decoder


def test_damaged_rle_slice_in_a_series_names_that_slice(tmp_path: Path) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=3, rows=4, cols=6, transfer_syntax=RLELossless, verify=False)
    files = [p.read_bytes() for p in truth.paths]
    start, end = _fragment_span(files[1])
    found = False
    for at in range(start + 64, end):
        damaged = bytearray(files[1])
        damaged[at] = 0x00
        outcome = check_input(READ, _series_bundle([files[0], bytes(damaged), files[2]]), ".bundle")
        if outcome.error is not None:
            assert "0001.dcm" in outcome.message
            found = True
    assert found


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless, RLELossless])
def test_item_lengths_and_offset_table_damage(tmp_path: Path, syntax: str) -> None:
    """Interesting values over the Basic Offset Table's and the fragment's item lengths, and over the table."""
    if not can_encode(syntax):
        pytest.skip(f"no encoder for {syntax}")
    path = write_ct_series(tmp_path, n_slices=1, rows=32, cols=32, transfer_syntax=syntax, verify=False).paths[0]
    data = path.read_bytes()
    start, _ = _fragment_span(data)
    bot = data.rindex(b"\xfe\xff\x00\xe0", 0, start - 8)  # the Basic Offset Table item before the fragment item
    for where in (bot + 4, start - 4):
        for value in (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFE):
            damaged = data[:where] + struct.pack("<I", value) + data[where + 4 :]
            check_input(READ, damaged, ".dcm")
    for tag in (b"\xfe\xff\xdd\xe0", b"\xfe\xff\x0d\xe0", b"\x00\x00\x00\x00"):  # the fragment item's tag replaced
        check_input(READ, data[: start - 8] + tag + data[start - 4 :], ".dcm")


# --------------------------------------------------------------------------- unreadable header values


def _with_odd_length_element(path: Path, tag: int, vr: str, raw: bytes) -> bytes:
    """``path``'s bytes (explicit VR little endian) with element ``tag`` appended holding ``raw`` (e.g. odd length)."""
    ds = pydicom.dcmread(path)
    ds.add_new(tag, vr, 0 if vr in ("US", "SS") else "")
    data = _bytes(ds)
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    at = data.index(head)
    length = struct.unpack_from("<H", data, at + 6)[0]
    return data[:at] + head + struct.pack("<H", len(raw)) + raw + data[at + 8 + length :]


def test_unreadable_pixel_padding_value_is_one_error_line(tmp_path: Path) -> None:
    """An odd-length SS PixelPaddingValue made ``dataset.get`` raise pydicom's BytesLengthException in the reader's
    meta; it decides the HU, so it is an error naming the file (alone and as one slice of a series)."""
    truth = write_ct_series(tmp_path / "s", n_slices=3, rows=8, cols=8, verify=False)
    bad = _with_odd_length_element(truth.paths[0], 0x00280120, "SS", b"\x01\x02\x03")
    outcome = check_input(READ, bad, ".dcm")
    assert outcome.error is not None and "PixelPaddingValue" in outcome.message
    files = [bad] + [p.read_bytes() for p in truth.paths[1:]]
    outcome = check_input(READ, _series_bundle(files), ".bundle")
    assert outcome.error is not None


def test_unreadable_descriptive_value_leaves_the_volume_and_drops_the_value(tmp_path: Path) -> None:
    """XRayTubeCurrent only describes the scan: an odd-length binary one (pydicom's BytesLengthException escaped the
    reader's meta) is left out of the meta, and the volume is read."""
    truth = write_ct_series(tmp_path / "s", n_slices=1, rows=8, cols=8, verify=False)
    path = tmp_path / "odd.dcm"
    path.write_bytes(_with_odd_length_element(truth.paths[0], 0x00181151, "US", b"\x01\x02\x03"))
    volume = ctlens.io.load(path)
    assert np.array_equal(volume.array, truth.hu)
    assert "tube_current_ma" not in volume.meta


def test_private_element_of_no_dicom_vr_that_cannot_be_converted(tmp_path: Path) -> None:
    """A GE private element (0043,106B) with a VR DICOM does not define was re-read as UN; pydicom converts a private
    element at once by its creator's dictionary (US) and raised BytesLengthException on its odd length, out of the
    header reader. It is now dropped (nothing reads it), and the slice reads, alone and in its series."""
    truth = write_ct_series(tmp_path / "s", n_slices=3, rows=8, cols=8, verify=False)
    data = truth.paths[1].read_bytes()
    creator = b"\x43\x00\x10\x00LO\x0c\x00GEMS_PARM_01"
    odd = b"\x43\x00\x6b\x10XX\x03\x00\x01\x02\x03"
    at = data.index(b"\xe0\x7f\x10\x00")
    files = [truth.paths[0].read_bytes(), data[:at] + creator + odd + data[at:], truth.paths[2].read_bytes()]
    box: dict = {}
    outcome = check_input(lambda p: box.setdefault("v", READ(p)), _series_bundle(files), ".bundle")
    assert outcome.error is None and np.array_equal(box["v"].array, truth.hu)
    assert check_input(READ, files[1], ".dcm").error is None


# --------------------------------------------------------------------------- slices without pixels


def test_slice_without_pixel_data_is_skipped_and_reported(tmp_path: Path) -> None:
    """A slice whose header has Rows but no PixelData failed the whole series with "'FileDataset' object has no
    attribute 'PixelData'"; it is now skipped like a truncated file, and the gap is said (not an even stack)."""
    truth = write_ct_series(tmp_path / "s", n_slices=5, rows=8, cols=8, verify=False)
    files = [p.read_bytes() for p in truth.paths]
    files[2] = _edit(truth.paths[2], lambda ds: delattr(ds, "PixelData"))
    folder = tmp_path / "series"
    folder.mkdir()
    for i, data in enumerate(files):
        (folder / f"{i:04d}.dcm").write_bytes(data)
    volume = ctlens.io.load(folder, uneven="keep")
    warnings = " ".join(volume.meta["warnings"])
    assert volume.shape[0] == 4 and "0002.dcm" in warnings and "no pixel data" in warnings
    assert volume.meta["missing_slices"] >= 1
    assert np.array_equal(volume.array, np.delete(truth.hu, 2, axis=0))
    with pytest.raises(CorruptFileError, match="no pixel data") as info:
        ctlens.io.load(folder / "0002.dcm")
    assert "0002.dcm" in str(info.value)


@pytest.mark.parametrize("where", [1, 2])
def test_every_truncation_of_one_slice_is_an_error_or_a_reported_gap(tmp_path: Path, where: int) -> None:
    """One slice of three cut at every element boundary: one error naming it, or a volume whose warnings name it.

    Never a silently shorter, even stack (the middle slice missing would look like an even series of step 2x).
    """
    truth = write_ct_series(tmp_path / "s", n_slices=3, rows=4, cols=4, verify=False)
    files = [p.read_bytes() for p in truth.paths]
    name = f"{where:04d}.dcm"
    data = files[where]
    ends = _element_ends(data)
    for end in ends:
        cut = list(files)
        cut[where] = data[:end]
        box: dict = {}

        def read(path: Path, box: dict = box) -> object:
            box["volume"] = READ(path)
            return box["volume"]

        outcome = check_input(read, _series_bundle(cut), ".bundle")
        if outcome.error is None:
            volume = box["volume"]
            if volume.shape[0] != 3 or not np.array_equal(volume.array, truth.hu):
                assert any(name in w for w in volume.meta["warnings"]), (end, volume.meta["warnings"])
        else:
            assert name in outcome.message, (end, outcome.message)


def _element_ends(data: bytes) -> list[int]:
    """Offsets where an element of an explicit VR little endian file ends (the file meta and the data set)."""
    ends, pos = [], 132
    while pos + 8 <= len(data):
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL", b"OV", b"SV", b"UV"):
            length, head = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", data, pos + 6)[0], 8
        pos += head + (0 if length == 0xFFFFFFFF else length)
        ends.append(min(pos, len(data)))
    return [0, 128, 132, *ends[:-1], len(data) - 1]


# --------------------------------------------------------------------------- colour images


def _colour(photometric: str, samples: int, planar: int | None):  # noqa: ANN202 - a data set change
    def change(ds: pydicom.Dataset) -> None:
        plane = (ds.pixel_array % 256).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PhotometricInterpretation, ds.SamplesPerPixel = photometric, samples
        if samples == 3:
            rgb = np.stack([plane, plane // 2, plane // 3], axis=-1)
            ds.PlanarConfiguration = planar
            ds.PixelData = (rgb.transpose(2, 0, 1) if planar else rgb).tobytes()
        else:
            ds.PixelData = plane.tobytes()
        if photometric == "PALETTE COLOR":
            for tag in (0x00281101, 0x00281102, 0x00281103):
                ds.add_new(tag, "US", [256, 0, 16])
            lut = (np.arange(256) * 256).astype("<u2").tobytes()
            for tag in (0x00281201, 0x00281202, 0x00281203):
                ds.add_new(tag, "OW", lut)

    return change


@pytest.mark.parametrize(
    ("photometric", "samples", "planar"),
    [
        ("PALETTE COLOR", 1, None),
        ("YBR_FULL_422", 1, None),
        ("RGB", 1, None),
        ("RGB", 3, 0),
        ("RGB", 3, 1),
        ("YBR_FULL", 3, 0),
        ("YBR_FULL_422", 3, 0),
    ],
)
def test_colour_images_are_refused_not_read_as_intensities(
    tmp_path: Path, photometric: str, samples: int, planar: int | None
) -> None:
    """A PALETTE COLOR plane holds colour-table indexes: read as ``raw * slope + intercept`` it came back as a
    volume of wrong HU without a word. Colour planes (any samples per pixel) are now one error naming the file."""
    truth = write_ct_series(tmp_path / "s", n_slices=3, rows=8, cols=8, verify=False)
    colour = _edit(truth.paths[1], _colour(photometric, samples, planar))
    path = tmp_path / "colour.dcm"
    path.write_bytes(colour)
    with pytest.raises(UnsupportedFormatError, match="colour image") as info:
        ctlens.io.load(path)
    assert "colour.dcm" in str(info.value)
    files = [truth.paths[0].read_bytes(), colour, truth.paths[2].read_bytes()]
    outcome = check_input(READ, _series_bundle(files), ".bundle")
    assert outcome.error == "UnsupportedFormatError" and "0001.dcm" in outcome.message


def test_monochrome1_is_read_as_stored(tmp_path: Path) -> None:
    """MONOCHROME1 inverts the display only: the HU are the rescaled stored values, as for MONOCHROME2."""
    truth = write_ct_series(tmp_path / "s", n_slices=1, rows=8, cols=8, verify=False)
    path = tmp_path / "m1.dcm"
    path.write_bytes(_edit(truth.paths[0], lambda ds: setattr(ds, "PhotometricInterpretation", "MONOCHROME1")))
    assert np.array_equal(ctlens.io.load(path).array, truth.hu)


# --------------------------------------------------------------------------- series layouts


def test_mixed_transfer_syntaxes_in_one_series_read_exactly(tmp_path: Path) -> None:
    syntaxes = [s for s in (RLELossless, JPEGLSLossless, JPEG2000Lossless) if can_encode(s)]
    syntaxes += [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    truths = [
        write_ct_series(tmp_path / str(k), n_slices=len(syntaxes), rows=32, cols=32, transfer_syntax=s, seed=0,
                        series_uid="1.2.3.99", study_uid="1.2.3.98", frame_uid="1.2.3.97", verify=False)
        for k, s in enumerate(syntaxes)
    ]  # fmt: skip
    files = [truths[k].paths[k].read_bytes() for k in range(len(syntaxes))]  # slice k in syntax k
    box: dict = {}
    outcome = check_input(lambda p: box.setdefault("v", READ(p)), _series_bundle(files), ".bundle")
    assert outcome.error is None and np.array_equal(box["v"].array, truths[0].hu)


def _rows_8(ds: pydicom.Dataset) -> None:
    ds.Rows = 8
    ds.PixelData = ds.PixelData[: 8 * ds.Columns * 2]


@pytest.mark.parametrize(
    "change",
    [
        lambda ds: setattr(ds, "PixelSpacing", [0.8, 0.8]),
        _rows_8,
        lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0.9, 0.43589]),
    ],
    ids=["spacing", "rows", "orientation"],
)
def test_a_slice_split_off_its_series_is_said_missing(tmp_path: Path, change) -> None:  # noqa: ANN001
    """The middle slice of three with another PixelSpacing, Rows or orientation is split into its own entry (as
    dcm2niix does); the other two came back as an even stack of twice the step without a word. The warning now
    names the file left out."""
    truth = write_ct_series(tmp_path / "s", n_slices=3, rows=16, cols=16, verify=False)
    files = [p.read_bytes() for p in truth.paths]
    files[1] = _edit(truth.paths[1], change)
    box: dict = {}
    outcome = check_input(lambda p: box.setdefault("v", READ(p)), _series_bundle(files), ".bundle")
    assert outcome.error is None
    volume = box["v"]
    assert volume.shape[0] == 2 and np.array_equal(volume.array, truth.hu[[0, 2]])
    assert any("0001.dcm" in w and "not in this volume" in w for w in volume.meta["warnings"])


@pytest.mark.parametrize("positions", [(0.0, 2.5, 5.0), (0.0, 1.0, 3.0, 6.0)], ids=["even", "uneven"])
@pytest.mark.parametrize("field", ["SeriesInstanceUID", "SeriesNumber"])
def test_a_slice_filed_under_another_series_is_said_missing(tmp_path: Path, field: str, positions: tuple) -> None:
    """A damaged SeriesInstanceUID (or SeriesNumber) files the second slice under another entry; the others came
    back as an even stack (0, 5 or 0, 3, 6), without a word. The warning now names the file."""
    truth = write_ct_series(tmp_path / "s", positions=positions, rows=8, cols=8, verify=False)
    files = [p.read_bytes() for p in truth.paths]
    files[1] = _edit(truth.paths[1], lambda ds: setattr(ds, field, "1.2.3.4.5" if field == "SeriesInstanceUID" else 7))
    box: dict = {}
    outcome = check_input(lambda p: box.setdefault("v", READ(p)), _series_bundle(files), ".bundle")
    assert outcome.error is None and box["v"].shape[0] == len(positions) - 1
    assert any("0001.dcm" in w and "lie between" in w for w in box["v"].meta["warnings"]), box["v"].meta["warnings"]


@pytest.mark.parametrize("layout", ["other kernel", "thick slices", "beyond"])
def test_other_series_of_the_same_frame_give_no_left_out_warning(tmp_path: Path, layout: str) -> None:
    """Series that repeat the stack's positions, interleave unevenly or reach beyond it are other series: no word."""
    common = {"rows": 8, "cols": 8, "verify": False, "frame_uid": "1.2.3.7", "study_uid": "1.2.3.8"}
    truth = write_ct_series(tmp_path / "s", n_slices=9, spacing=(1.0, 0.7, 0.7), origin=(0, 0, 0), **common)
    if layout == "other kernel":
        write_ct_series(tmp_path / "s", n_slices=4, spacing=(1.0, 0.7, 0.7), origin=(0, 0, 0), **common)
    elif layout == "thick slices":
        write_ct_series(tmp_path / "s", n_slices=3, spacing=(2.5, 0.7, 0.7), origin=(0, 0, 1.5), **common)
    else:
        write_ct_series(tmp_path / "s", n_slices=4, spacing=(1.0, 0.7, 0.7), origin=(0, 0, 6.5), **common)
    volume = ctlens.io.load(tmp_path / "s")
    assert np.array_equal(volume.array, truth.hu) and volume.meta["warnings"] == []


@pytest.mark.parametrize("bits", [1, 8, 32, 64])
def test_bits_allocated_of_every_width_give_the_stored_values(tmp_path: Path, bits: int) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=1, rows=8, cols=8, verify=False)
    raw = truth.raw[0].astype(np.int64)

    def change(ds: pydicom.Dataset) -> None:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        if bits == 1:
            ds.PixelRepresentation = 0
            ds.PixelData = np.packbits((raw > 0).astype(np.uint8).ravel(), bitorder="little").tobytes()
        elif bits == 8:
            ds.PixelRepresentation = 0
            ds.PixelData = (raw % 256).astype(np.uint8).tobytes()
        else:
            ds.PixelData = raw.astype(f"<i{bits // 8}").tobytes()

    path = tmp_path / f"b{bits}.dcm"
    path.write_bytes(_edit(truth.paths[0], change))
    expected = {1: (raw > 0).astype(np.int64), 8: raw % 256}.get(bits, raw) + int(truth.intercept)
    assert np.array_equal(ctlens.io.load(path).array[0], expected)


@pytest.mark.parametrize("frames", [1, 2, 10])
def test_number_of_frames_lying_is_one_error_line(tmp_path: Path, frames: int) -> None:
    for syntax in (ExplicitVRLittleEndian, RLELossless):
        path = write_multiframe_ct(tmp_path / "mf.dcm", n_frames=4, rows=8, cols=8, transfer_syntax=syntax).paths[0]
        outcome = check_input(READ, _edit(path, lambda ds: setattr(ds, "NumberOfFrames", frames)), ".dcm")
        assert outcome.error is not None


def test_duplicate_positions_are_refused_or_dropped_with_a_word(tmp_path: Path) -> None:
    truth = write_ct_series(tmp_path / "s", n_slices=3, rows=8, cols=8, verify=False)
    files = [p.read_bytes() for p in truth.paths]
    box: dict = {}
    outcome = check_input(lambda p: box.setdefault("v", READ(p)), _series_bundle([*files, files[1]]), ".bundle")
    assert outcome.error is None and np.array_equal(box["v"].array, truth.hu)
    assert any("0003.dcm" in w for w in box["v"].meta["warnings"])  # the copy, said to be dropped

    def same_place_new_uid(ds: pydicom.Dataset) -> None:
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.ImagePositionPatient = list(pydicom.dcmread(truth.paths[0]).ImagePositionPatient)

    other = _edit(truth.paths[2], same_place_new_uid)
    outcome = check_input(READ, _series_bundle([*files, other]), ".bundle")
    assert outcome.error is not None


# --------------------------------------------------------------------------- real files, mutated


def _shared_slices() -> list[Path]:
    if not SHARED.is_dir():
        return []
    folders = sorted({p.parent for p in SHARED.rglob("*") if p.is_file() and p.suffix in ("", ".dcm")})
    out = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in ("", ".dcm") and p.name != "LICENSE")
        if files:
            out.append(files[len(files) // 2])
    return out


@pytest.mark.skipif(not _shared_slices(), reason="shared data folder ../shared/data is absent")
@pytest.mark.parametrize("value", [0, 0xFFFFFFFF])
def test_real_slices_with_interesting_values_over_length_fields(value: int) -> None:
    """Every 2- or 4-byte length field of the first 40 elements of one real slice per shared series set to a value."""
    for path in _shared_slices():
        data = path.read_bytes()
        if data[128:132] != b"DICM":
            continue
        for at, width in length_fields(data)[:40]:
            damaged = data[:at] + (value & (256**width - 1)).to_bytes(width, "little") + data[at + width :]
            check_input(READ, damaged, ".dcm")
