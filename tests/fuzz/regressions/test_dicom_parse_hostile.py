"""Hostile lengths for the one-pass DICOM header parser (:mod:`ctlens.io.dicom_parse`).

Each declared length beyond the end of the file, sequence nested beyond ``MAX_DEPTH`` or long run of items either
parses to the same data set pydicom reads or is left to pydicom (``parse_file`` gives ``None``), and ``ctlens
convert`` answers one error line or a valid file: never a hang, never a data set silently cut short.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, run_cli
from gen_dicom import _dataset, _write, with_nesting

from ctlens.io.dicom_parse import MAX_DEPTH, parse_file


def _with_private(tail_length: int, declared: int) -> bytes:
    """A valid file with a private OB element (0009,0010)... of ``declared`` length and ``tail_length`` bytes."""
    from pydicom.dataelem import DataElement

    ds = _dataset(6, 5, 0.0)
    ds[0x00091001] = DataElement(0x00091001, "OB", b"\x01" * tail_length)
    data = _write(ds, "explicit")
    head = b"\x09\x00\x01\x10OB\x00\x00" + struct.pack("<I", tail_length)
    assert data.count(head) == 1
    return data.replace(head, head[:8] + struct.pack("<I", declared))


@pytest.mark.parametrize("declared", [1000, 70_000, 0x7FFFFFF0, 0xFFFFFFFE])
def test_element_length_beyond_the_file_is_left_to_pydicom(tmp_path: Path, declared: int) -> None:
    path = tmp_path / "long.dcm"
    path.write_bytes(_with_private(10, declared))
    assert parse_file(path) is None  # not a data set cut short at the declared end
    out = tmp_path / "out.nii.gz"
    result = run_cli("convert", str(path), str(out))
    if result.exit_code:
        assert_one_line_error(result, path.name)
        assert not out.exists()


def test_a_fitting_private_element_still_parses(tmp_path: Path) -> None:
    path = tmp_path / "ok.dcm"
    path.write_bytes(_with_private(100_000, 100_000))  # over DEFER_BYTES: skipped, read only if asked for
    parsed = parse_file(path)
    assert parsed is not None and parsed.facts["Rows"] == 6 and parsed.pixel_length == 60


@pytest.mark.parametrize("depth", [3, MAX_DEPTH + 5])
def test_nesting_beyond_the_limit_is_left_to_pydicom(tmp_path: Path, depth: int) -> None:
    from pydicom.sequence import Sequence

    ds = _dataset(6, 5, 0.0)
    ds.ReferencedImageSequence = Sequence([])
    path = tmp_path / "nested.dcm"
    path.write_bytes(with_nesting(_write(ds, "explicit"), depth))
    parsed = parse_file(path)
    assert (parsed is None) == (depth > MAX_DEPTH)
    if parsed is not None:
        assert parsed.facts["Columns"] == 5


def test_long_undefined_length_sequence_parses(tmp_path: Path) -> None:
    """100 000 empty items in an undefined-length sequence: read in growing chunks (linear, not quadratic)."""
    from pydicom.sequence import Sequence

    ds = _dataset(6, 5, 0.0)
    ds.ReferencedImageSequence = Sequence([])
    data = _write(ds, "explicit")
    empty = b"\x08\x00\x40\x11SQ\x00\x00\x00\x00\x00\x00"  # (0008,1140) SQ, defined length 0
    assert data.count(empty) == 1
    items = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" * 100_000
    undefined = empty[:8] + b"\xff\xff\xff\xff" + items + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    path = tmp_path / "items.dcm"
    path.write_bytes(data.replace(empty, undefined))
    parsed = parse_file(path)
    assert parsed is not None and parsed.facts["Rows"] == 6 and parsed.pixel_length == 60


def test_undefined_length_on_a_plain_element(tmp_path: Path) -> None:
    data = _write(_dataset(6, 5, 0.0), "explicit")
    rows = b"\x28\x00\x10\x00US\x02\x00\x06\x00"
    assert data.count(rows) == 1
    path = tmp_path / "undef.dcm"
    path.write_bytes(data.replace(rows, b"\x28\x00\x10\x00UN\x00\x00\xff\xff\xff\xff", 1))
    assert parse_file(path) is None
    assert_one_line_error(run_cli("convert", str(path), str(tmp_path / "o.nii.gz")), path.name)


@pytest.mark.parametrize("syntax", ["rle", "deflate"])
def test_compressed_file_declaring_a_huge_image(tmp_path: Path, syntax: str) -> None:
    """A 6 x 5 compressed slice whose header says 65535 x 65535: refused before a decoder allocates 8 GB."""
    import resource

    if syntax == "rle":  # compressed as 6 x 5, then the header's sizes raised
        data = _write(_dataset(6, 5, 0.0), syntax)
        rows, cols = b"\x28\x00\x10\x00US\x02\x00\x06\x00", b"\x28\x00\x11\x00US\x02\x00\x05\x00"
        assert data.count(rows) == 1 and data.count(cols) == 1
        data = data.replace(rows, rows[:8] + b"\xff\xff").replace(cols, cols[:8] + b"\xff\xff")
    else:  # the data set is deflated as a whole: written with the huge sizes
        ds = _dataset(6, 5, 0.0)
        ds.Rows = ds.Columns = 65535
        data = _write(ds, syntax)
    path = tmp_path / "huge.dcm"
    path.write_bytes(data)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert_one_line_error(run_cli("convert", str(path), str(tmp_path / "o.nii.gz")), path.name)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1024 * 1024  # KiB: under 1 GiB


@pytest.mark.parametrize("keyword_tag", [b"\x28\x00\x01\x01", b"\x28\x00\x00\x01", b"\x28\x00\x03\x01"])
def test_us_element_of_odd_length(tmp_path: Path, keyword_tag: bytes) -> None:
    """Found by the fuzzer: BitsStored (a US) of 259 bytes made pydicom's conversion raise BytesLengthException."""
    data = _write(_dataset(6, 5, 0.0), "explicit")
    start = data.index(keyword_tag + b"US\x02\x00")
    value = data[start + 8 : start + 10]
    data = data[:start] + keyword_tag + b"US\x03\x00" + value + b"\x00" + data[start + 10 :]
    path = tmp_path / "odd.dcm"
    path.write_bytes(data)
    out = tmp_path / "o.nii.gz"
    result = run_cli("convert", str(path), str(out))
    if result.exit_code:
        assert_one_line_error(result, path.name)
        assert not out.exists()
