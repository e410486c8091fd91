"""Structure-aware DICOM inputs: small valid CT files with one element pushed to its extremes, then maybe damaged.

A seed is a tiny CT image (explicit or implicit little endian, big endian, deflated, RLE-encapsulated) written by
pydicom; a strategy sets one to three image elements (``Rows``, ``Columns``, ``BitsAllocated``, ``BitsStored``,
``HighBit``, ``PixelRepresentation``, ``SamplesPerPixel``, ``NumberOfFrames``, ``PlanarConfiguration``) to
extreme values of their width, or geometry strings (``PixelSpacing``, ``ImagePositionPatient``,
``ImageOrientationPatient``, rescale) to extreme text, makes the pixel data shorter or longer than declared, nests
sequences deeply, gives an element an odd VR, and sometimes truncates or flips bytes, or damages one byte of the
encapsulated (RLE) pixel data or an element's length field (:func:`damage_encapsulated`, :func:`damage_length`: what a
byte-mutation fuzzer of real files does; an RLE run past the plane made the Rust decoder panic). Series (a folder
of three slices, one of them crafted) come as bundles (``gen_volume.bundle``).

Example:
    >>> dicom_seed()[128:132]
    b'DICM'
"""

from __future__ import annotations

import functools
import io
import struct
from typing import Any

import numpy as np
from gen_ctz import mutate_bytes
from gen_volume import bundle
from hypothesis import strategies as st

__all__ = ["damage_encapsulated", "damage_length", "dicom_bytes", "dicom_seed", "dicom_seeds"]

SYNTAXES = {
    "explicit": "1.2.840.10008.1.2.1",
    "implicit": "1.2.840.10008.1.2",
    "big": "1.2.840.10008.1.2.2",
    "deflate": "1.2.840.10008.1.2.1.99",
    "rle": "1.2.840.10008.1.2.5",
}
US_FIELDS = ["Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel"]
US_VALUES = [0, 1, 2, 7, 8, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 4096, 32767, 32768, 65535]
TEXT_FIELDS = [
    "PixelSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "SliceThickness",
    "NumberOfFrames",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "WindowCenter",
]
TEXT_VALUES = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "",
    "x",
    "1\\2",
    "1\\2\\3\\4\\5\\6\\7",
    "0\\0\\0\\0\\0\\0",
    "1\\0\\0\\1\\0\\0",
    "2147483648",
    "-2147483649",
    "99999999999999999999",
    "1e-320",
    "MONOCHROME2",
    "RGB",
    "YBR_FULL_422",
    "PALETTE COLOR",
]
ODD_VRS = ["UN", "OB", "DS", "IS", "SQ", "AT", "FD", "UL", "SS", "LO", "OW", "UT", "XX"]


def _dataset(rows: int, cols: int, position: float, frames: int = 1) -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.{int(position) + 10}"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.1", "1.2.3.2"
    ds.Modality, ds.PatientID, ds.InstanceNumber = "CT", "fuzz", int(position) + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(position)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if frames > 1:
        ds.NumberOfFrames = frames
    # a texture, not a ramp: RLE then writes literal runs too (a damaged one is what made its decoder panic)
    ds.PixelData = (np.arange(rows * cols * frames) * 7919 % 2000).astype("<i2").tobytes()
    return ds


def _write(ds: Any, syntax: str) -> bytes:
    from pydicom.uid import UID

    if syntax == "rle":
        # the same file every time: pydicom would give the compressed instance a random new UID (hypothesis then
        # saw "inconsistent data generation": lengths drawn from differed)
        ds.compress(UID(SYNTAXES["rle"]), encoding_plugin="pydicom", generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = UID(SYNTAXES[syntax])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@functools.cache
def dicom_seed(syntax: str = "explicit", position: float = 0.0, frames: int = 1) -> bytes:
    """A valid 6 x 5 CT slice (or ``frames`` frames) in ``syntax`` (a key of :data:`SYNTAXES`)."""
    return _write(_dataset(6, 5, position, frames), syntax)


def dicom_seeds() -> list[tuple[bytes, str]]:
    """Valid single files of every transfer syntax, a multi-frame file and a three-slice series (bundle)."""
    out = [(dicom_seed(s), ".dcm") for s in SYNTAXES]
    out.append(
        (bundle([("series/", b"")] + [(f"series/{k}.dcm", dicom_seed("explicit", k)) for k in range(3)]), ".bundle")
    )
    return out


INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF]
"""Values a byte-mutation fuzzer writes (over one byte, or a whole length field, cut to its width)."""
_ENCAPSULATED = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
"""Explicit VR little endian PixelData of undefined length (encapsulated): where its items begin."""
_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UT", b"UC", b"UR", b"SV", b"UV")


def damage_encapsulated(data: bytes, at: int, value: int) -> bytes:
    """``data`` with one byte of its encapsulated pixel data (items, offset table, codec stream) set to ``value``.

    ``at`` picks the byte (modulo the pixel data's length); data that is not encapsulated comes back unchanged.

    Example:
        >>> seed = dicom_seed("rle")
        >>> damage_encapsulated(seed, 100, 0xFF) != seed, damage_encapsulated(dicom_seed(), 1, 0) == dicom_seed()
        (True, True)
    """
    start = data.find(_ENCAPSULATED)
    if start < 0 or start + len(_ENCAPSULATED) >= len(data):
        return data
    start += len(_ENCAPSULATED)
    where = start + at % (len(data) - start)
    return data[:where] + bytes([value & 0xFF]) + data[where + 1 :]


def damage_length(data: bytes, which: int, value: int) -> bytes:
    """``data`` (explicit VR little endian) with the length field of one top-level element (``which``, modulo their
    number, file meta included) set to ``value`` cut to its 2 or 4 bytes.

    Example:
        >>> len(damage_length(dicom_seed(), 3, 0xFFFF)) == len(dicom_seed())
        True
    """
    fields = length_fields(data)
    if not fields:
        return data
    at, width = fields[which % len(fields)]
    return data[:at] + (value & (256**width - 1)).to_bytes(width, "little") + data[at + width :]


def length_fields(data: bytes) -> list[tuple[int, int]]:
    """``(offset, width)`` of the length field of each top-level element of an explicit VR little endian file
    (file meta included); empty for data without the ``DICM`` preamble.

    Example:
        >>> length_fields(dicom_seed())[0]
        (138, 2)
    """
    fields, pos = [], 132
    while pos + 12 <= len(data) and data[128:132] == b"DICM":
        if data[pos + 4 : pos + 6] in _LONG_VRS:
            fields.append((pos + 8, 4))
            length, head = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            fields.append((pos + 6, 2))
            length, head = struct.unpack_from("<H", data, pos + 6)[0], 8
        pos += head + (0 if length == 0xFFFFFFFF else length)
    return fields


_EMPTY_SQ = b"\x08\x00\x40\x11SQ\x00\x00\x00\x00\x00\x00"
"""An empty ReferencedImageSequence of defined length in explicit VR little endian (where nesting is put)."""


def nested_sequence(depth: int) -> bytes:
    """ReferencedImageSequence nested ``depth`` levels deep (undefined lengths), explicit VR little endian.

    Built as bytes: pydicom takes minutes to write a few hundred levels.

    Example:
        >>> len(nested_sequence(2)) > len(nested_sequence(1))
        True
    """
    open_level = _EMPTY_SQ[:8] + b"\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    close_level = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return open_level * depth + close_level * depth


def with_nesting(data: bytes, depth: int) -> bytes:
    """``data`` (explicit VR little endian, holding an empty ReferencedImageSequence) with that sequence nested."""
    return data.replace(_EMPTY_SQ, nested_sequence(depth), 1)


def _odd_vr(draw: Any, ds: Any) -> None:
    from pydicom.dataelem import DataElement

    keyword = draw(st.sampled_from(US_FIELDS + TEXT_FIELDS + ["PixelData"]))
    tag = ds.data_element(keyword).tag if keyword in ds else None
    if tag is None:
        return
    vr = draw(st.sampled_from(ODD_VRS))
    if vr in ("UN", "OB", "OW", "XX"):
        value: Any = draw(st.binary(max_size=12))
        vr = "UN" if vr == "XX" else vr
    elif vr in ("DS", "IS", "LO", "UT"):
        value = draw(st.sampled_from(TEXT_VALUES))
        if vr == "IS":
            value = draw(st.sampled_from(["0", "-1", "2147483647", "99999999999", ""]))
    elif vr == "SQ":
        from pydicom.sequence import Sequence

        value = Sequence([])
    elif vr == "AT":
        value = 0x00280010
    elif vr == "FD":
        value = draw(st.sampled_from([0.0, -1.0, 1e308, float("nan")]))
    else:
        value = draw(st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1]))
        if vr == "SS":
            value = draw(st.sampled_from([0, -1, 32767, -32768]))
    ds[tag] = DataElement(tag, vr, value)


def _mutate(draw: Any, ds: Any) -> None:
    kind = draw(st.sampled_from(["us", "us", "text", "pixels", "nested", "vr", "drop"]))
    if kind == "us":
        setattr(ds, draw(st.sampled_from(US_FIELDS)), draw(st.sampled_from(US_VALUES) | st.integers(0, 65535)))
    elif kind == "text":
        keyword = draw(st.sampled_from(TEXT_FIELDS))
        value = draw(st.sampled_from(TEXT_VALUES))
        from pydicom.datadict import dictionary_VR, tag_for_keyword
        from pydicom.dataelem import DataElement

        tag = tag_for_keyword(keyword)
        vr = dictionary_VR(tag)
        if vr == "US":
            vr, value = "IS", value  # an odd VR holding text
        ds[tag] = DataElement(tag, vr, value)
    elif kind == "pixels":
        data = ds.get("PixelData")
        if not isinstance(data, bytes | bytearray):  # retyped by an earlier change (an IS of 99999999999: no bytes())
            return
        data = bytes(data)
        how = draw(st.sampled_from(["short", "long", "empty", "odd"]))
        if how == "short":
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif how == "long":
            data += bytes(draw(st.integers(1, 100_000)))
        elif how == "empty":
            data = b""
        else:
            data = data[:-1]
        ds.PixelData = data
    elif kind == "nested":  # filled in as bytes after writing (explicit VR little endian only)
        from pydicom.sequence import Sequence

        ds.ReferencedImageSequence = Sequence([])
    elif kind == "vr":
        _odd_vr(draw, ds)
    else:
        keyword = draw(st.sampled_from(US_FIELDS + TEXT_FIELDS + ["PixelData", "SOPClassUID", "SeriesInstanceUID"]))
        if keyword in ds:
            delattr(ds, keyword)


def _crafted(draw: Any, position: float = 0.0) -> bytes:
    frames = draw(st.sampled_from([1, 1, 1, 3]))
    ds = _dataset(6, 5, position, frames)
    for _ in range(draw(st.integers(1, 3))):
        try:
            _mutate(draw, ds)
        except (ValueError, TypeError, OverflowError, UnicodeError, AttributeError, struct.error):
            pass  # pydicom refuses to hold this value: the file goes without this change
    damage = draw(
        st.sampled_from(["none", "none", "none", "truncate", "bytes", "encapsulated", "encapsulated", "length"])
    )
    syntax = draw(st.sampled_from(["explicit", "explicit", "implicit", "big", "deflate", "rle"]))
    if damage == "encapsulated":  # the codec stream is what is damaged: an encapsulated syntax
        syntax = "rle"
    try:
        data = _write(ds, syntax)
    except Exception:  # noqa: BLE001 - pydicom refuses to write some crafted values: write them without checks
        data = _write(_dataset(6, 5, position, frames), syntax)
    if _EMPTY_SQ in data:
        data = with_nesting(data, draw(st.sampled_from([1, 10, 100, 1000, 20000])))
    if damage == "encapsulated":
        rng = draw(st.randoms(use_true_random=False))  # spread over the stream (drawn integers favour the ends)
        for _ in range(draw(st.integers(1, 8))):
            data = damage_encapsulated(data, rng.randrange(2**16), rng.choice([0, 0x7F, 0x80, 0xFF]))
    elif damage == "length":
        data = damage_length(data, draw(st.integers(0, 2**16)), draw(st.sampled_from(INTERESTING)))
    elif damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "bytes":
        data = mutate_bytes(data, draw)
    return data


@st.composite
def dicom_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, suffix)``: a crafted single file (``.dcm``), or a series bundle with one crafted slice."""
    if draw(st.integers(0, 3)) == 0:
        crafted = draw(st.integers(0, 2))
        files = [("series/", b"")]
        for k in range(3):
            files.append((f"series/{k}.dcm", _crafted(draw, k) if k == crafted else dicom_seed("explicit", k)))
        return bundle(files), ".bundle"
    return _crafted(draw), ".dcm"
