"""One-pass DICOM header parser: every element up to the pixel data read once, and a set of values read as plain text.

:func:`parse_file` reads a PS3.10 file's head (128-byte preamble, ``DICM``, file meta group) and its data set in
Explicit VR Little Endian, Implicit VR Little Endian or Explicit VR Big Endian (every encapsulated syntax encodes
its data set as Explicit VR Little Endian), element by element from one buffered read, and stops at the pixel data,
noting where its value starts and how long it is. The elements become pydicom ``RawDataElement`` values in a
``FileDataset`` (converted by pydicom only when asked for, values over :data:`DEFER_BYTES` read from the file only
then), so :attr:`ParsedFile.dataset` behaves as ``pydicom.dcmread(path, defer_size=DEFER_BYTES)``'s data set.

In the same pass the values of :data:`FACT_KEYWORDS` are decoded straight from their bytes into plain Python values
(:func:`plain`: ``str`` for text and decimal / integer strings, ``int`` / ``float`` for binary numbers, a tuple when
several, ``None`` when absent or empty), so the reader never converts them through pydicom. Text that is not plain
ASCII (other character sets) is left to pydicom.

Anything unusual returns ``None`` and the caller reads the file with pydicom: no preamble, a deflated data set,
group 0000 elements, a VR that is not two capitals, a data set whose encoding differs from its transfer syntax, an
undefined length on anything but a sequence or the pixel data, an element running past the end of the file, sequences
nested deeper than :data:`MAX_DEPTH`.

Example:
    >>> parse_file(__file__) is None  # not a DICOM file: pydicom gets to say why
    True
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian
from pydicom.valuerep import VR

__all__ = ["DEFER_BYTES", "FACT_KEYWORDS", "ParsedFile", "encapsulated_frame", "parse_file", "plain"]

DEFER_BYTES = 64 * 1024
"""Values larger than this (pixel data, big private blobs) are read from the file only when asked for."""
FACT_KEYWORDS: tuple[str, ...] = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "Modality",
    "ImageType",
    "SeriesDescription",
    "ConvolutionKernel",
    "InstanceNumber",
    "AcquisitionNumber",
    "EchoNumbers",
    "EchoTime",
    "TemporalPositionIdentifier",
    "TriggerTime",
    "StackID",
    "AcquisitionDateTime",
    "AcquisitionTime",
    "ContentTime",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "RescaleSlope",
    "RescaleIntercept",
)
"""Header values decoded in the parsing pass (``SliceRef.value``); add a keyword here to have it read there too."""

MAX_DEPTH = 64
"""Sequences nested deeper than this are left to pydicom (real files nest a few levels)."""
_PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_DEFINED_VRS = frozenset(str(vr) for vr in VR)
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
"""Text VRs that hold one value (a backslash is text there)."""
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_CHUNK = 16 * 1024
_FACT_TAGS: dict[int, tuple[str, str]] = {
    int(keyword_dict[k]): (k, dictionary_VR(keyword_dict[k])) for k in FACT_KEYWORDS
}
"""tag -> (keyword, dictionary VR) of every fact."""


class _Unusual(Exception):
    """Raised inside the parser for anything it leaves to pydicom."""


@dataclass
class ParsedFile:
    """What :func:`parse_file` found: the data set (pixels deferred), the facts and where the pixel data lie."""

    dataset: FileDataset
    facts: dict[str, Any]
    """Keyword -> :func:`plain` value for every :data:`FACT_KEYWORDS` entry read (``None`` when absent)."""
    pixel_offset: int | None
    """File offset of the pixel data value (None: no pixel data)."""
    pixel_length: int | None
    """Its length in bytes (``0xFFFFFFFF``: encapsulated, undefined length)."""


def plain(value: Any) -> Any:
    """A header value as plain Python: text stripped, decimal and integer strings as their text, several as a tuple.

    Applied to what pydicom returns, it gives what :func:`parse_file` decodes itself, so the two readings compare.

    Example:
        >>> from pydicom.valuerep import DSfloat
        >>> plain([DSfloat("0.5"), DSfloat("-1.25 ")]), plain(" CT "), plain(""), plain(512)
        (('0.5', '-1.25'), 'CT', None, 512)
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value) or None
    if isinstance(value, str):
        return value.strip(" \0") or None
    if isinstance(value, list | tuple) or (hasattr(value, "__iter__") and hasattr(value, "__len__")):
        items = tuple(_one(v) for v in value)
        if not items:
            return None
        return items if len(items) > 1 else items[0]
    return _one(value)


def _one(value: Any) -> Any:
    """One value of a multi-valued element (:func:`plain`): DS / IS as their original text."""
    if isinstance(value, str):
        return value.strip(" \0")
    if hasattr(value, "original_string"):  # pydicom DSfloat / IS keep the text they were read from
        return str(value.original_string).strip(" \0")
    if isinstance(value, int | float) and type(value) not in (int, float, bool):  # DSfloat / IS made from numbers
        return str(value)
    return value


def _text(raw: bytes, vr: str) -> Any:
    """A text value decoded as :func:`plain` would give pydicom's; ``_Unusual`` for non-ASCII (charsets)."""
    if not raw.isascii() or b"\x1b" in raw:
        raise _Unusual
    text = raw.decode("ascii")
    if vr in _SINGLE_TEXT_VRS or "\\" not in text:
        return text.strip(" \0") or None
    return tuple(v.strip(" \0") for v in text.split("\\"))


def _binary(raw: bytes, vr: str, endian: str) -> Any:
    size = struct.calcsize(_BINARY[vr])
    if len(raw) % size:
        raise _Unusual
    values = struct.unpack(f"{endian}{len(raw) // size}{_BINARY[vr]}", raw)
    if not values:
        return None
    return values if len(values) > 1 else values[0]


class _Reader:
    """The file's bytes from offset 0, read in chunks as the parser needs them (values over the limit skipped)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.size = os.fstat(handle.fileno()).st_size
        """The file's length: no element may run past it."""
        self.data = handle.read(_CHUNK)
        self.base = 0
        """File offset of ``data[0]`` (moves forward when a deferred value is skipped)."""
        self.end = len(self.data)
        """File offset just after ``data``."""

    def need(self, end: int) -> None:
        """Make ``data`` reach file offset ``end``; ``_Unusual`` past the end of the file."""
        missing = end - self.end
        if missing > 0:
            if end > self.size:
                raise _Unusual
            more = self.handle.read(max(missing, _CHUNK, len(self.data)))  # doubling: linear for long sequences
            self.data += more
            self.end += len(more)
            if len(more) < missing:
                raise _Unusual

    def bytes(self, start: int, end: int) -> bytes:
        if end > self.end:
            self.need(end)
        return self.data[start - self.base : end - self.base]

    def skip_to(self, offset: int) -> None:
        """Continue at file ``offset`` without reading what lies before it."""
        if offset <= self.end:
            return
        if offset > self.size:  # a declared length beyond the end of the file
            raise _Unusual
        self.handle.seek(offset)
        self.data, self.base = self.handle.read(_CHUNK), offset
        self.end = offset + len(self.data)


_STRUCTS = {
    endian: (
        struct.Struct(f"{endian}HH").unpack_from,
        struct.Struct(f"{endian}H").unpack_from,
        struct.Struct(f"{endian}I").unpack_from,
    )
    for endian in "<>"
}


def _walk_items(reader: _Reader, pos: int, endian: str, implicit: bool, depth: int = 0) -> int:
    """From the first item of an undefined-length sequence (or encapsulated value): the offset of its delimiter."""
    if depth > MAX_DEPTH:
        raise _Unusual
    tag_of, _, u32 = _STRUCTS[endian]
    while True:
        reader.need(pos + 8)
        group, elem = tag_of(reader.data, pos - reader.base)
        tag = group << 16 | elem
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise _Unusual
        length = u32(reader.data, pos - reader.base + 4)[0]
        pos += 8
        pos = pos + length if length != _UNDEFINED else _walk_elements(reader, pos, endian, implicit, depth + 1)


def _element_head(reader: _Reader, pos: int, endian: str, implicit: bool) -> tuple[int, str | None, int, int]:
    """(tag, VR or None, length, offset of the value) of the element at ``pos``."""
    if pos + 12 > reader.end:
        reader.need(pos + 8)
    data, at = reader.data, pos - reader.base
    tag_of, u16, u32 = _STRUCTS[endian]
    group, elem = tag_of(data, at)
    tag = group << 16 | elem
    if implicit or group == 0xFFFE:
        return tag, None, u32(data, at + 4)[0], pos + 8
    first, second = data[at + 4], data[at + 5]
    if not (65 <= first <= 90 and 65 <= second <= 90):
        raise _Unusual
    vr = _VR_NAMES[first - 65][second - 65]
    if vr is None:
        raise _Unusual
    if vr in _LONG_VRS:
        reader.need(pos + 12)
        return tag, vr, u32(reader.data, at + 8)[0], pos + 12
    return tag, vr, u16(data, at + 6)[0], pos + 8


_VR_NAMES = [
    [name if name in _DEFINED_VRS else None for name in (chr(65 + a) + chr(65 + b) for b in range(26))]
    for a in range(26)
]
"""Two capital letters -> their VR, None where DICOM defines none (such a file is left to pydicom)."""


def _is_sequence(reader: _Reader, tag: int, vr: str | None, value_at: int, endian: str) -> bool:
    """Whether an undefined-length element is a sequence (explicit SQ; implicit: by dictionary or its first item)."""
    if vr is not None:
        return vr == "SQ"
    try:
        return dictionary_VR(BaseTag(tag)) == "SQ"
    except KeyError:
        group, elem = struct.unpack(f"{endian}HH", reader.bytes(value_at, value_at + 4))
        return (group << 16 | elem) == _ITEM


def _walk_elements(reader: _Reader, pos: int, endian: str, implicit: bool, depth: int) -> int:
    """Skip the elements of an undefined-length item; return the offset after its delimiter."""
    while True:
        tag, vr, length, value_at = _element_head(reader, pos, endian, implicit)
        if tag == _ITEM_END:
            return value_at
        if length == _UNDEFINED:
            if tag != _PIXEL_DATA and not _is_sequence(reader, tag, vr, value_at, endian):
                raise _Unusual
            pos = _walk_items(reader, value_at, endian, implicit, depth) + 8
        else:
            if value_at + length > reader.size:
                raise _Unusual
            pos = value_at + length


def _meta(reader: _Reader) -> tuple[FileMetaDataset, dict[int, bytes], int]:
    """The file meta group (Explicit VR Little Endian), its raw values by tag and the offset after it."""
    elements: dict[BaseTag, RawDataElement] = {}
    values: dict[int, bytes] = {}
    pos = 132
    while True:
        reader.need(pos + 8)
        if reader.data[pos - reader.base : pos - reader.base + 2] != b"\x02\x00":
            return FileMetaDataset(elements), values, pos
        tag, vr, length, value_at = _element_head(reader, pos, "<", False)
        if length == _UNDEFINED:
            raise _Unusual
        value = reader.bytes(value_at, value_at + length)
        elements[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, value_at, False, True, True, False)
        values[tag] = value
        pos = value_at + length


def _fact(raw: bytes, vr: str | None, dict_vr: str, endian: str, signed: bool) -> Any:
    vr = vr or dict_vr
    if vr == "US or SS":
        vr = "SS" if signed else "US"
    if vr in _BINARY:
        return _binary(raw, vr, endian)
    if vr in ("OB", "OW", "UN", "SQ") or " or " in vr:
        raise _Unusual
    return _text(raw, vr)


def parse_file(path: str | os.PathLike[str]) -> ParsedFile | None:
    """Parse ``path``'s header in one pass (module docstring); ``None`` when pydicom should read it instead.

    Example:
        >>> import io, tempfile, pydicom
        >>> from pydicom.dataset import Dataset, FileMetaDataset
        >>> ds = Dataset(); ds.Modality = "CT"; ds.Rows = 2; ds.Columns = 2; ds.BitsAllocated = 16
        >>> ds.PixelData = bytes(8)
        >>> ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"; ds.SOPInstanceUID = "1.2.3"
        >>> ds.file_meta = FileMetaDataset(); ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        >>> path = tempfile.mktemp(suffix=".dcm"); ds.save_as(path, enforce_file_format=True)
        >>> parsed = parse_file(path)
        >>> parsed.facts["Modality"], parsed.facts["Rows"], parsed.pixel_length, parsed.dataset.Modality
        ('CT', 2, 8, 'CT')
    """
    try:
        with open(path, "rb") as handle:
            return _parse(handle, os.fspath(path))
    except (_Unusual, struct.error, OSError, ValueError, KeyError, IndexError, TypeError, RecursionError):
        return None  # whatever is odd about the file, pydicom reads it (and names the problem)


def _parse(handle: Any, path: str) -> ParsedFile | None:
    reader = _Reader(handle)
    if reader.data[128:132] != b"DICM":
        return None
    file_meta, meta_values, pos = _meta(reader)
    syntax = meta_values.get(0x00020010, b"").decode("ascii", "replace").strip(" \0")
    if not syntax or syntax == DeflatedExplicitVRLittleEndian:
        return None
    implicit = syntax == ImplicitVRLittleEndian
    little = syntax != ExplicitVRBigEndian
    endian = "<" if little else ">"
    elements: dict[BaseTag, RawDataElement] = {}
    facts: dict[str, Any] = dict.fromkeys(FACT_KEYWORDS)
    facts["TransferSyntaxUID"] = syntax
    facts["MediaStorageSOPClassUID"] = meta_values.get(0x00020002, b"").decode("ascii", "replace").strip(" \0")
    pixel_offset = pixel_length = None
    signed = False
    first = True
    tag_of, u16, u32 = _STRUCTS[endian]
    while True:
        if pos + 12 <= reader.end:  # the usual case, inline (this loop runs for every element of every file)
            data, at = reader.data, pos - reader.base
            group, elem = tag_of(data, at)
            tag = group << 16 | elem
            if implicit or group == 0xFFFE:
                vr, length, value_at = None, u32(data, at + 4)[0], pos + 8
            else:
                c1, c2 = data[at + 4], data[at + 5]
                if not (65 <= c1 <= 90 and 65 <= c2 <= 90):
                    raise _Unusual
                vr = _VR_NAMES[c1 - 65][c2 - 65]
                if vr is None:
                    raise _Unusual
                if vr in _LONG_VRS:
                    length, value_at = u32(data, at + 8)[0], pos + 12
                else:
                    length, value_at = u16(data, at + 6)[0], pos + 8
        else:
            try:
                reader.need(pos + 8)
            except _Unusual:
                if pos == reader.end:
                    break  # the end of the file, between elements
                raise
            tag, vr, length, value_at = _element_head(reader, pos, endian, implicit)
        if first:  # pydicom switches encodings where the first element contradicts the transfer syntax
            vr_bytes = reader.bytes(pos + 4, pos + 6)
            if implicit and 65 <= vr_bytes[0] <= 90 and 65 <= vr_bytes[1] <= 90:
                raise _Unusual
            first = False
        if tag >> 16 in (0x0000, 0x0002, 0xFFFE):
            raise _Unusual
        key = BaseTag(tag)
        if tag == _PIXEL_DATA:
            elements[key] = RawDataElement(key, vr, length, None, value_at, implicit, little, True, False)
            pixel_offset, pixel_length = value_at, length
            break
        if tag >> 16 == 0x7FE0:
            raise _Unusual  # float / double pixel data: pydicom
        if length == _UNDEFINED:
            if not _is_sequence(reader, tag, vr, value_at, endian):
                raise _Unusual
            end = _walk_items(reader, value_at, endian, implicit)
            value = reader.bytes(value_at, end)
            elements[key] = RawDataElement(key, "SQ", len(value), value, value_at, implicit, little, True, False)
            pos = end + 8
            continue
        if value_at + length > reader.size:
            raise _Unusual  # a declared length beyond the end of the file: pydicom names the fault
        if length > DEFER_BYTES and tag != 0x00080005:
            elements[key] = RawDataElement(key, vr, length, None, value_at, implicit, little, True, False)
            reader.skip_to(value_at + length)
            pos = value_at + length
            continue
        stop = value_at + length
        if stop <= reader.end:
            value = reader.data[value_at - reader.base : stop - reader.base]
        else:
            value = reader.bytes(value_at, stop)
        elements[key] = RawDataElement(key, vr, length, value, value_at, implicit, little, True, False)
        if tag in _FACT_TAGS:
            keyword, dict_vr = _FACT_TAGS[tag]
            try:
                facts[keyword] = _fact(value, vr, dict_vr, endian, signed) if length else None
            except _Unusual:
                del facts[keyword]  # left to pydicom (SliceRef.value converts it on demand)
            if keyword == "PixelRepresentation":
                signed = facts.get(keyword) == 1
        pos = value_at + length
    dataset = FileDataset(path, elements, reader.data[:128], file_meta, implicit, little)
    charset = dataset._character_set if 0x00080005 in elements else default_encoding  # pydicom's reading
    dataset.set_original_encoding(implicit, little, charset)
    return ParsedFile(dataset, facts, pixel_offset, pixel_length)


def encapsulated_frame(path: str | os.PathLike[str], offset: int) -> bytes | None:
    """The one frame of a single-frame encapsulated pixel data value at file ``offset``: its fragments joined.

    ``offset`` is :attr:`ParsedFile.pixel_offset` of an undefined-length pixel data element; the first item (the
    basic offset table) is skipped. ``None`` when the items are not as PS3.5 A.4 describes (the caller then decodes
    through pydicom).

    Example:
        >>> import tempfile
        >>> item = lambda b: b"\\xfe\\xff\\x00\\xe0" + struct.pack("<I", len(b)) + b
        >>> path = tempfile.mktemp()
        >>> _ = open(path, "wb").write(item(b"") + item(b"ab") + item(b"cd") + b"\\xfe\\xff\\xdd\\xe0" + bytes(4))
        >>> encapsulated_frame(path, 0)
        b'abcd'
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return None
    head = struct.Struct("<HHI")
    fragments: list[bytes] = []
    pos = 0
    while pos + 8 <= len(data):
        group, elem, length = head.unpack_from(data, pos)
        tag = group << 16 | elem
        if tag == _SEQUENCE_END:
            return b"".join(fragments[1:]) if len(fragments) > 1 else None
        if tag != _ITEM or length == _UNDEFINED or pos + 8 + length > len(data):
            return None
        fragments.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + length
    return None
