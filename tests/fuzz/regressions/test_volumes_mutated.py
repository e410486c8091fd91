"""Findings of byte- and token-level mutation of real volume files (NRRD, MetaImage, zip, .ctz, HDF5), not of
the structure-aware generators: each input is built here the way the mutation turned it up.

* NRRD ``encoding: ascii`` with a value longer than 1024 characters: NrrdIO scans it into a fixed buffer and the
  process died (segmentation fault). A NRRD header running into its data (no empty line), or a field line near
  1000 characters with a bad value: teem quotes the line in a fixed message buffer (segmentation fault).
* A ``.ctz`` / JSON export whose HTJ2K slice stream has a tile width of 0 (SIGFPE in OpenJPH), a quantization
  marker shorter than its sub-bands or an irreversible wavelet (segmentation fault).
* A zip member compressed with LZMA whose data are damaged: ``LZMAError`` escaped.
* An HDF5 file with a dataset name that is not UTF-8: h5py hands it out as bytes and sorting the names failed.
* Text-encoded voxels (NRRD ascii, MetaImage ``BinaryData = False``) of short numbers were refused as truncated:
  the size check took one stored byte per voxel byte.

The inputs that killed the process run in a child process (the invariant of :func:`fuzz_harness.check_input`
there), so a regression fails this test instead of ending the test run.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ctz_craft import pack_ctz, unpack_ctz
from fuzz_harness import check_input
from fuzz_readers import READERS
from gen_volume import bundle

_HERE = Path(__file__).resolve().parents[1]
_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from fuzz_harness import check_input
from fuzz_readers import READERS
data = open(sys.argv[3], "rb").read()
outcome = check_input(READERS[sys.argv[2]].call, data, sys.argv[4])
print("OUTCOME", outcome.error, "|", outcome.message)
"""


def _in_child(tmp_path: Path, reader: str, data: bytes, suffix: str) -> str:
    """The harness on ``data`` in a fresh Python process; the error class and message it printed."""
    source = tmp_path / f"case{suffix}"
    source.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(_HERE), reader, str(source), suffix],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"the reader killed the process (exit {done.returncode}): {done.stderr[-500:]}"
    line = next(line for line in done.stdout.splitlines() if line.startswith("OUTCOME"))
    return line.removeprefix("OUTCOME ")


def _nrrd(fields: str, body: bytes) -> bytes:
    return f"NRRD0004\n{fields}\n".encode() + body


_SHORT = "type: short\ndimension: 3\nsizes: 4 3 2\nendian: little\n"


# ---------------------------------------------------------------------------------------------------- NRRD


@pytest.mark.parametrize("length", [1100, 5000])
def test_nrrd_ascii_value_longer_than_nrrdio_reads(tmp_path: Path, length: int) -> None:
    body = b"1 " * 10 + b"9" * length
    outcome = _in_child(tmp_path, "nrrd_mha", _nrrd(_SHORT + "encoding: ascii\n", body), ".nrrd")
    assert outcome.startswith("CorruptFileError") and "longer than 1024" in outcome


def test_nrrd_ascii_long_value_in_detached_data_file(tmp_path: Path) -> None:
    header = _nrrd(_SHORT + "encoding: ascii\ndata file: v.txt\n", b"")
    data = bundle([("v.nhdr", header), ("v.txt", b"1 " * 5 + b"7" * 3000 + b" 1" * 20)])
    outcome = _in_child(tmp_path, "nrrd_mha", data, ".bundle")
    assert outcome.startswith("CorruptFileError") and "longer than 1024" in outcome


def test_nrrd_ascii_long_value_across_read_blocks(tmp_path: Path) -> None:
    """A long value that straddles the scan's 1 MiB blocks is still found."""
    from ctlens.core.errors import CorruptFileError
    from ctlens.io.itk_image import read_itk_image

    count = ((1 << 20) - 1000) // 2  # "1 " values: the long value starts 1000 bytes before the block ends
    path = tmp_path / "big.nrrd"
    path.write_bytes(
        _nrrd(f"type: short\ndimension: 1\nsizes: {count + 1}\nencoding: ascii\n", b"1 " * count + b"5" * 2000)
    )
    with pytest.raises(CorruptFileError, match="longer than 1024"):
        read_itk_image(path)


@pytest.mark.parametrize(
    "line",
    [
        "ab: " + "x" * 1000,  # an unknown field with a long value
        "endian: " + "x" * 1100,  # a known field, a bad long value
        "x" * 1100,  # no "field: value" form
        "-21 231 66 20 47 " * 100,  # the header runs into ascii data (no empty line)
    ],
)
def test_nrrd_long_or_formless_header_line(tmp_path: Path, line: str) -> None:
    outcome = _in_child(tmp_path, "nrrd_mha", _nrrd(_SHORT + "encoding: raw\n" + line + "\n", bytes(48)), ".nrrd")
    assert outcome.startswith("CorruptFileError") and "NRRD header line 7" in outcome


def test_nrrd_long_comment_and_key_value_lines_still_read(tmp_path: Path) -> None:
    from ctlens.io.itk_image import read_itk_image

    path = tmp_path / "ok.nrrd"
    values = np.arange(24, dtype="<i2")
    path.write_bytes(
        _nrrd(_SHORT + "encoding: raw\n# " + "c" * 3000 + "\nnote:=" + "v" * 3000 + "\n", values.tobytes())
    )
    assert read_itk_image(path).array.ravel().tolist() == values.tolist()


@pytest.mark.parametrize("kind", ["float", "double", "int"])
def test_nrrd_ascii_short_numbers_read(tmp_path: Path, kind: str) -> None:
    """ "0 1 2 ..." holds fewer bytes than the float voxels it gives; that is no truncation."""
    from ctlens.io.itk_image import read_itk_image

    values = np.arange(24) % 10
    path = tmp_path / "a.nrrd"
    text = " ".join(str(v) for v in values).encode()
    path.write_bytes(_nrrd(f"type: {kind}\ndimension: 3\nsizes: 4 3 2\nencoding: ascii\n", text))
    assert read_itk_image(path).array.ravel().tolist() == values.tolist()
    path.write_bytes(_nrrd(f"type: {kind}\ndimension: 3\nsizes: 4 3 2\nencoding: ascii\n", text[:20]))
    assert check_input(READERS["nrrd_mha"].call, path.read_bytes(), ".nrrd").error == "CorruptFileError"


def test_metaimage_ascii_short_numbers_read(tmp_path: Path) -> None:
    from ctlens.io.itk_image import read_itk_image

    values = np.arange(24) % 10
    path = tmp_path / "a.mha"
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = False\nDimSize = 4 3 2\nElementType = MET_FLOAT\n"
        "ElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + " ".join(str(v) for v in values).encode() + b"\n")
    assert read_itk_image(path).array.ravel().tolist() == values.tolist()


# ---------------------------------------------------------------------------------------------------- .ctz


def _htj2k_ctz() -> dict:
    import tempfile

    from ctlens.codec import encode_volume

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.ctz"
        rng = np.random.default_rng(3)
        encode_volume(rng.integers(0, 200, (3, 16, 12)).astype(np.uint8), path, profile="fast")
        parts = unpack_ctz(path.read_bytes())
    assert {meta.backend for _, _, meta in parts["streams"]} == {2}  # htj2k
    return parts


def _damage_stream(parts: dict, change) -> bytes:  # noqa: ANN001 - a function of the stream bytes
    main, corr, meta = parts["streams"][1]
    streams = list(parts["streams"])
    streams[1] = (change(bytearray(main)), corr, meta)
    return pack_ctz(parts["header"], streams, parts["trailer"])


def _marker(stream: bytearray, code: bytes) -> int:
    return bytes(stream).index(code)


def _zero_tile_width(s: bytearray) -> bytes:
    s[24:28] = bytes(4)  # SIZ XTsiz
    return bytes(s)


def _short_qcd(s: bytearray) -> bytes:
    at = _marker(s, b"\xff\x5c")
    s[at + 2 : at + 4] = struct.pack(">H", 3)  # Lqcd: no values for the sub-bands
    return bytes(s)


def _irreversible(s: bytearray) -> bytes:
    at = _marker(s, b"\xff\x52")
    s[at + 13] = 0  # SPcod wavelet 9/7, while QCD says "no quantization"
    return bytes(s)


@pytest.mark.parametrize("change", [_zero_tile_width, _short_qcd, _irreversible])
@pytest.mark.parametrize("as_json", [False, True])
def test_ctz_damaged_htj2k_header(tmp_path: Path, change, as_json: bool) -> None:  # noqa: ANN001
    data = _damage_stream(_htj2k_ctz(), change)
    if as_json:
        doc = {"format": "ctlens-ctz-json", "version": 1, "ctz_base64": base64.b64encode(data).decode()}
        outcome = _in_child(tmp_path, "ctz_json", json.dumps(doc).encode(), ".json")
    else:
        outcome = _in_child(tmp_path, "ctz", data, ".ctz")
    assert outcome.startswith("CorruptFileError") and "htj2k stream is damaged" in outcome


def test_ctz_htj2k_valid_streams_still_decode(tmp_path: Path) -> None:
    from ctlens.codec import decode_volume

    data = pack_ctz(**_htj2k_ctz())
    path = tmp_path / "v.ctz"
    path.write_bytes(data)
    rng = np.random.default_rng(3)
    assert np.array_equal(decode_volume(path).array, rng.integers(0, 200, (3, 16, 12)).astype(np.uint8))


# ---------------------------------------------------------------------------------------------------- zip


def test_zip_damaged_lzma_member(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_LZMA) as archive:
        archive.writestr("series/a.nii", bytes(range(256)) * 64)
    data = bytearray(out.getvalue())
    start = 30 + len("series/a.nii") + 40  # inside the member's LZMA data
    data[start : start + 32] = b"\xa5" * 32
    outcome = check_input(READERS["zip"].call, bytes(data), ".zip")
    assert outcome.error == "CorruptFileError"


# ---------------------------------------------------------------------------------------------------- HDF5


def test_h5_dataset_name_not_utf8(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("train_1_a_1", data=np.zeros((2, 3, 4), np.uint8))
        h5.create_dataset("train_QQQQ_1", data=np.zeros((2, 3, 4), np.uint8))
    data = path.read_bytes()
    assert data.count(b"QQQQ") == 1
    data = data.replace(b"QQQQ", b"\xff\xfe\xff\xfe")
    with h5py.File(io.BytesIO(data), "r") as h5:
        assert any(isinstance(name, bytes) for name in h5)  # what h5py hands out for such a name
    outcome = check_input(READERS["h5"].call, data, ".h5")
    assert outcome.error == "CorruptFileError" and "UTF-8" in outcome.message


# ---------------------------------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    "header",
    [
        b"NRRD0004\ndata file: s%0100000d.raw 0 3 1\n\n",
        b"NRRD0004\ndata file: s%-2147483648d.raw 0 3 1 2\n\n",  # the mutation's: a 2 GB name per file (a hang)
        b"NRRD0004\ndata file: s%.300d.raw 0 3 1\n\n",
        b"NDims = 3\nElementDataFile = s%0999d.raw 0 3 1\n",
    ],
)
def test_data_file_pattern_with_huge_field_width(header: bytes) -> None:
    from ctlens.core.errors import UnsafeArchiveError
    from ctlens.io.detached_header import parse_header

    with pytest.raises(UnsafeArchiveError, match="field width"):
        parse_header(header)


def test_data_file_pattern_huge_width_through_the_reader(tmp_path: Path) -> None:
    header = _nrrd(_SHORT + "encoding: raw\ndata file: s%-2147483648d.raw 0 1 1 2\n", b"")
    data = bundle([("v.nhdr", header), ("s0.raw", bytes(24)), ("s1.raw", bytes(24))])
    outcome = check_input(READERS["nrrd_mha"].call, data, ".bundle", time_limit=60)
    assert outcome.error == "UnsafeArchiveError" and "field width" in outcome.message


def test_data_file_pattern_with_ordinary_width_still_expands() -> None:
    from ctlens.io.detached_header import parse_header

    assert parse_header(b"NRRD0004\ndata file: s%03d.raw 1 2\n\n").data_files == ["s001.raw", "s002.raw"]
    assert parse_header(b"NRRD0004\ndata file: s%.255d.raw 1 1\n\n").data_files == ["s" + "1".zfill(255) + ".raw"]


# ---------------------------------------------------------------------------------------------------- NIfTI-2


@pytest.mark.parametrize("dims", [[3, 2**32, 2**32, 1], [4, 2**21, 2**21, 2**21, 4], [3, 2**62, 4, 1]])
def test_nifti2_shape_whose_byte_count_wraps_int64(dims: list[int]) -> None:
    """NIfTI-2 sizes are 64-bit: their product overflowed numpy's int64 (to 0) and passed the size check."""
    import nibabel as nib

    data = bytearray(nib.Nifti2Image(np.zeros((2, 2, 2), np.int16), np.eye(4)).to_bytes())
    struct.pack_into("<8q", data, 16, *(dims + [1] * (8 - len(dims))))
    for suffix, content in ((".nii", bytes(data)), (".nii.gz", gzip.compress(bytes(data)))):
        outcome = check_input(READERS["nifti"].call, content, suffix)
        assert outcome.error == "CorruptFileError" and "the header" in outcome.message and "bytes" in outcome.message


def _with_extension(esize: int, content: bytes, vox_offset: float = 368.0) -> bytes:
    import nibabel as nib

    base = nib.Nifti1Image(np.zeros((4, 3, 2), np.int16), np.eye(4)).to_bytes()
    data = bytearray(base[:348] + b"\x01\0\0\0" + struct.pack("<ii", esize, 6) + content + base[352:])
    struct.pack_into("<f", data, 108, vox_offset)
    return bytes(data)


def test_nifti_gz_extension_size_bomb() -> None:
    """An extension declaring 2 GB, followed by 400 MB of zeros that gzip keeps in 400 kB: nibabel read them all."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = packer.compress(_with_extension(2**31 - 8, bytes(400 * 2**20))) + packer.flush()
    outcome = check_input(READERS["nifti"].call, data, ".nii.gz")
    assert outcome.error == "CorruptFileError" and "header extension 1" in outcome.message


def test_nifti_many_small_extensions() -> None:
    records = struct.pack("<ii", 16, 6) + bytes(8)
    data = _with_extension(16, bytes(8) + records * 2000, vox_offset=352 + 16 * 2001)
    outcome = check_input(READERS["nifti"].call, gzip.compress(data), ".nii.gz")
    assert outcome.error == "CorruptFileError" and "more than 1000 extensions" in outcome.message


def test_nifti_ordinary_extension_still_read(tmp_path: Path) -> None:
    from ctlens.io.nifti import read_nifti

    path = tmp_path / "ext.nii.gz"
    path.write_bytes(gzip.compress(_with_extension(16, b"comment\0")))
    assert read_nifti(path).shape == (2, 3, 4)


@pytest.mark.parametrize("suffix", [".nhdr", ".mhd"])
def test_data_file_name_too_long_for_the_file_system(tmp_path: Path, suffix: str) -> None:
    """Found by the 10-minute campaign: a data file name of 300+ characters made ``os.lstat`` raise ENAMETOOLONG,
    which escaped as a raw ``OSError`` (the file system's limit is 255 bytes a name)."""
    name = "x" * 300 + ".raw"
    if suffix == ".nhdr":
        header = _nrrd(_SHORT + "encoding: raw\n" + f"data file: {name}\n", b"")
    else:
        fields = "NDims = 3\nDimSize = 4 3 2\nElementType = MET_SHORT\n"
        header = f"ObjectType = Image\n{fields}ElementDataFile = {name}\n".encode()
    outcome = check_input(READERS["nrrd_mha"].call, header, suffix)
    assert outcome.error == "CorruptFileError" and "cannot use the data file" in outcome.message, outcome.message
    assert "(304 characters)" in outcome.message and len(outcome.message) < 400, outcome.message


# A 178-byte JPEG-LS stream of a 12 x 9 slice whose scan is damaged (found by the 10-minute ctz_json campaign): CharLS
# 2.4 works on it for seconds before it reports "a general structural problem".
_SLOW_JPEGLS = bytes.fromhex(
    "ffd8ffe80020535049464600020000010000000c000000090a1006010000012c0000012cffe8000800000001ffd8fff7000b10000c00"
    "0901011100fff8000d01ffff0012004301140040ffda00080101000000004098010140107c3a231082c0680302a034018150540103204c"
    "02804068340704c0d80501c0a802030484c038088c0a02c0b01a16008981b03a074161101811030060285c3c050d07170543404020c0c"
    "3e0f1e038547c150d034c89421415"
)


def test_ctz_error_does_not_wait_for_a_slow_damaged_slice(tmp_path: Path) -> None:
    """Slice 0 fails at once, slice 2 is the slow stream: the error must come before CharLS is done with slice 2
    (it waited for it, the decoder pool being shut down with ``wait=True``)."""
    import imagecodecs

    from ctlens.codec import decode_volume, encode_volume
    from ctlens.core.errors import CorruptFileError

    rng = np.random.default_rng(3)
    good = tmp_path / "good.ctz"
    encode_volume(rng.integers(-1000, 1000, (4, 12, 9)).astype(np.int16), good, profile="compact")
    parts = unpack_ctz(good.read_bytes())
    streams = [list(s) for s in parts["streams"]]
    streams[0][0] = b"\xff\xd8\xff\xf7\x00\x0b\x10\x00\x0c\x00\x09\x00"  # no component: refused at once
    streams[2][0] = _SLOW_JPEGLS
    crafted = tmp_path / "crafted.ctz"
    crafted.write_bytes(pack_ctz(parts["header"], [tuple(s) for s in streams], parts["trailer"]))
    started = time.perf_counter()
    with pytest.raises(imagecodecs.JpeglsError):
        imagecodecs.jpegls_decode(_SLOW_JPEGLS)
    slow = time.perf_counter() - started  # what CharLS takes here and now
    started = time.perf_counter()
    with pytest.raises(CorruptFileError, match="slice 0"):
        decode_volume(crafted, workers=2)
    assert time.perf_counter() - started < slow / 2, (slow, time.perf_counter() - started)


def test_ctz_jpegls_stream_without_its_end_marker_is_refused_before_charls(tmp_path: Path) -> None:
    """Every stream ctlens writes ends with EOI; one that does not is refused without handing it to CharLS."""
    from ctlens.codec import decode_volume, encode_volume
    from ctlens.core.errors import CorruptFileError

    good = tmp_path / "good.ctz"
    encode_volume(np.random.default_rng(4).integers(-1000, 1000, (3, 12, 9)).astype(np.int16), good, profile="compact")
    parts = unpack_ctz(good.read_bytes())
    streams = [list(s) for s in parts["streams"]]
    streams[1][0] = _SLOW_JPEGLS
    crafted = tmp_path / "crafted.ctz"
    crafted.write_bytes(pack_ctz(parts["header"], [tuple(s) for s in streams], parts["trailer"]))
    started = time.process_time()
    with pytest.raises(CorruptFileError, match="slice 1.*end-of-image"):
        decode_volume(crafted)
    assert time.process_time() - started < 1.0
    assert decode_volume(good).shape == (3, 12, 9)  # streams as written still decode
