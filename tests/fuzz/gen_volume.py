"""Structure-aware NIfTI, NRRD and MetaImage inputs: valid small files with one header field pushed to its extremes.

NIfTI-1 (``.nii`` / ``.nii.gz``): the 348-byte header's ``dim``, ``pixdim``, ``datatype``, ``bitpix``,
``vox_offset``, ``scl_slope`` / ``scl_inter``, ``qform_code`` / ``sform_code``, quaternion and ``srow`` fields set
to extreme values of their width, the voxel data truncated or extended, the gzip stream truncated or replaced.
NRRD / MetaImage (``.nrrd``, ``.mha`` attached; ``.nhdr`` / ``.mhd`` detached, as a bundle with their data file):
header lines (sizes, type, encoding, dimension, spacings, directions, data file names, byte skips) replaced by
extreme, malformed or very long values, lines dropped or duplicated, the data truncated, gzip-damaged or written
as text (maybe with one value longer than NrrdIO scans).

Example:
    >>> nifti_seed()[344:348]
    b'n+1\\x00'
"""

from __future__ import annotations

import functools
import gzip
import io
import struct
import zipfile
from typing import Any

import numpy as np
from gen_ctz import mutate_bytes
from hypothesis import strategies as st

__all__ = ["bundle", "itk_bytes", "itk_seeds", "nifti_bytes", "nifti_seed", "unbundle"]

INT16 = [0, 1, -1, 2, 3, 4, 7, 8, 255, 256, 32767, -32768, 4096]
FLOAT32 = [0.0, -0.0, 1.0, -1.0, 1e-38, 3.4e38, -3.4e38, float("nan"), float("inf"), float("-inf"), 0.5, 1e6, 352.0]
DATATYPES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 255, 32767, -1]
# (name, offset, struct format, count) of the NIfTI-1 header fields a reader interprets
NIFTI_FIELDS = [
    ("sizeof_hdr", 0, "<i", 1),
    ("dim", 40, "<h", 8),
    ("datatype", 70, "<h", 1),
    ("bitpix", 72, "<h", 1),
    ("pixdim", 76, "<f", 8),
    ("vox_offset", 108, "<f", 1),
    ("scl_slope", 112, "<f", 1),
    ("scl_inter", 116, "<f", 1),
    ("xyzt_units", 123, "<b", 1),
    ("qform_code", 252, "<h", 1),
    ("sform_code", 254, "<h", 1),
    ("quatern", 256, "<f", 6),
    ("srow", 280, "<f", 12),
]


def bundle(files: list[tuple[str, bytes]]) -> bytes:
    """Several files as one input (a stored zip; the harness unpacks it, the first member is read).

    Example:
        >>> unbundle(bundle([("a.nhdr", b"x"), ("a.raw", b"y")]))
        [('a.nhdr', b'x'), ('a.raw', b'y')]
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files:
            zf.writestr(name, data)
    return out.getvalue()


def unbundle(data: bytes) -> list[tuple[str, bytes]]:
    """The files of :func:`bundle`, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


@functools.cache
def nifti_seed(dtype: str = "int16", shape: tuple[int, ...] = (5, 4, 3)) -> bytes:
    """A small valid NIfTI-1 single file (``.nii``) of ``dtype`` and ``shape`` (x, y, z)."""
    import nibabel as nib

    data = (np.arange(int(np.prod(shape))) % 100).astype(dtype).reshape(shape)
    img = nib.Nifti1Image(data, np.diag([0.7, 0.8, 2.5, 1.0]))
    img.header.set_qform(img.affine, code=1)
    return img.to_bytes()


def _field_value(draw: Any, fmt: str) -> Any:
    if fmt == "<f":
        return draw(st.sampled_from(FLOAT32) | st.floats(width=32, allow_nan=True, allow_infinity=True))
    if fmt == "<b":
        return draw(st.integers(-128, 127))
    if fmt == "<i":
        return draw(st.sampled_from([348, 540, 0, -1, 2**31 - 1, 1 << 24]) | st.integers(-(2**31), 2**31 - 1))
    return draw(st.sampled_from(INT16 + DATATYPES) | st.integers(-32768, 32767))


@st.composite
def nifti_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, suffix)``: a NIfTI-1 file with one to three header fields changed, maybe truncated or gzipped."""
    dtype = draw(st.sampled_from(["int16", "uint8", "float32", "int32", "float64", "int8", "uint16"]))
    shape = draw(st.sampled_from([(5, 4, 3), (3, 2), (2, 3, 4, 1), (4, 3, 2, 2)]))
    buf = bytearray(nifti_seed(dtype, shape))
    for _ in range(draw(st.integers(1, 3))):
        name, offset, fmt, count = draw(st.sampled_from(NIFTI_FIELDS))
        index = draw(st.integers(0, count - 1))
        size = struct.calcsize(fmt)
        struct.pack_into(fmt, buf, offset + index * size, _field_value(draw, fmt))
    data = bytes(buf)
    tail = draw(st.sampled_from(["keep", "truncate", "extend", "bytes"]))
    if tail == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif tail == "extend":
        data += draw(st.binary(max_size=64))
    elif tail == "bytes":
        data = mutate_bytes(data, draw)
    if draw(st.booleans()):
        packed = gzip.compress(data, mtime=0)
        how = draw(st.sampled_from(["keep", "keep", "truncate", "bytes", "raw"]))
        if how == "truncate":
            packed = packed[: draw(st.integers(0, len(packed)))]
        elif how == "bytes":
            packed = mutate_bytes(packed, draw)
        elif how == "raw":
            packed = data  # not gzip although the name says so
        return packed, ".nii.gz"
    return data, ".nii"


# ---------------------------------------------------------------------------------------------------------------
# NRRD / MetaImage

NRRD_TYPES = ["short", "unsigned char", "float", "double", "int", "uint", "int64", "block", "rgb", "char", "xyz", ""]
META_TYPES = ["MET_SHORT", "MET_UCHAR", "MET_FLOAT", "MET_DOUBLE", "MET_INT", "MET_LONG_LONG", "MET_NONE", "MET_OTHER"]
SIZE_WORDS = ["0", "-1", "1", "2", "65535", "4294967296", "99999999999999999999", "1e9", "nan", "x", "", "3 3 3 3 3 3"]
NUMBER_WORDS = ["0", "-0", "1", "-1", "nan", "inf", "-inf", "1e308", "1e-320", "x", "", "(0,0,0)", "(nan,1,1)"]


def _nrrd_header(lines: dict[str, str]) -> bytes:
    return ("NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in lines.items()) + "\n").encode("utf-8", "surrogatepass")


def _meta_header(lines: dict[str, str]) -> bytes:
    return "".join(f"{k} = {v}\n" for k, v in lines.items()).encode("utf-8", "surrogatepass")


def _voxels(gz: bool) -> bytes:
    raw = (np.arange(24) % 50).astype("<i2").tobytes()
    return gzip.compress(raw, mtime=0) if gz else raw


def _nrrd_lines(gz: bool, data_file: str | None) -> dict[str, str]:
    lines = {
        "type": "short",
        "dimension": "3",
        "space": "left-posterior-superior",
        "sizes": "4 3 2",
        "space directions": "(0.7,0,0) (0,0.7,0) (0,0,2)",
        "space origin": "(0,0,0)",
        "endian": "little",
        "encoding": "gzip" if gz else "raw",
    }
    if data_file:
        lines["data file"] = data_file
    return lines


def _meta_lines(gz: bool, data_file: str) -> dict[str, str]:
    lines = {
        "ObjectType": "Image",
        "NDims": "3",
        "BinaryData": "True",
        "BinaryDataByteOrderMSB": "False",
        "CompressedData": "True" if gz else "False",
        "TransformMatrix": "1 0 0 0 1 0 0 0 1",
        "Offset": "0 0 0",
        "ElementSpacing": "0.7 0.7 2",
        "DimSize": "4 3 2",
        "ElementType": "MET_SHORT",
        "ElementDataFile": data_file,
    }
    if gz:
        lines["CompressedDataSize"] = str(len(_voxels(True)))
    return lines


def itk_seeds() -> list[tuple[bytes, str]]:
    """Valid NRRD / MetaImage inputs: attached raw and gzip, detached (bundles with their data file)."""
    out = []
    for gz in (False, True):
        out.append((_nrrd_header(_nrrd_lines(gz, None)) + _voxels(gz), ".nrrd"))
        out.append((_meta_header(_meta_lines(gz, "LOCAL")) + _voxels(gz), ".mha"))
        out.append((bundle([("v.nhdr", _nrrd_header(_nrrd_lines(gz, "v.raw"))), ("v.raw", _voxels(gz))]), ".bundle"))
        out.append((bundle([("v.mhd", _meta_header(_meta_lines(gz, "v.raw"))), ("v.raw", _voxels(gz))]), ".bundle"))
    return out


def _word(draw: Any, key: str) -> str:
    if key in ("sizes", "DimSize"):
        return " ".join(draw(st.lists(st.sampled_from(SIZE_WORDS), min_size=1, max_size=4)))
    if key in ("type",):
        return draw(st.sampled_from(NRRD_TYPES))
    if key == "ElementType":
        return draw(st.sampled_from(META_TYPES))
    if key in ("encoding",):
        return draw(st.sampled_from(["raw", "gzip", "gz", "bzip2", "ascii", "text", "hex", "zip", ""]))
    if key in ("data file", "ElementDataFile"):
        return draw(
            st.sampled_from(
                ["v.raw", "LOCAL", "LIST", "../v.raw", "/etc/passwd", "v.raw v.raw", "v%03d.raw 0 1000000 1", "", "."]
            )
        )
    if key in ("dimension", "NDims"):
        return draw(st.sampled_from(["0", "1", "2", "3", "4", "16", "17", "-1", "1000", "x"]))
    if key in ("CompressedData", "BinaryData", "BinaryDataByteOrderMSB", "endian"):
        return draw(st.sampled_from(["True", "False", "big", "little", "", "maybe"]))
    return " ".join(draw(st.lists(st.sampled_from(NUMBER_WORDS), max_size=9)))


@st.composite
def itk_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, suffix)`` of a crafted NRRD / MetaImage file (attached) or bundle (detached header + data)."""
    kind = draw(st.sampled_from(["nrrd", "mha", "nhdr", "mhd"]))
    gz = draw(st.booleans())
    detached = kind in ("nhdr", "mhd")
    data_file = "v.raw" if detached else ("LOCAL" if kind == "mha" else None)
    lines = _nrrd_lines(gz, data_file) if kind in ("nrrd", "nhdr") else _meta_lines(gz, data_file or "LOCAL")
    keys = list(lines) + ["byte skip", "line skip", "HeaderSize", "kinds", "space dimension", "ElementNumberOfChannels"]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["set", "set", "set", "drop", "long"]))
        if action == "drop":
            lines.pop(key, None)
        elif action == "long":  # teem quotes a bad line in a fixed message buffer
            lines[key] = draw(st.sampled_from(["x", "1 ", "(1,0,0) "])) * draw(st.sampled_from([300, 1100]))
        else:
            lines[key] = _word(draw, key)
    if "ElementDataFile" in lines:  # MetaImage: the data file line must come last
        lines["ElementDataFile"] = lines.pop("ElementDataFile")
    header = _nrrd_header(lines) if kind in ("nrrd", "nhdr") else _meta_header(lines)
    voxels = _voxels(gz)
    damage = draw(st.sampled_from(["none", "none", "truncate", "extend", "bytes", "text"]))
    if damage == "text":  # ascii voxels (for encoding ascii / BinaryData False), maybe one value too long to scan
        voxels = b" ".join(b"%d" % v for v in range(24)) + draw(st.sampled_from([b"", b"\n", b" " + b"9" * 1100]))
    elif damage == "truncate":
        voxels = voxels[: draw(st.integers(0, len(voxels)))]
    elif damage == "extend":
        voxels += draw(st.binary(max_size=32))
    elif damage == "bytes":
        voxels = mutate_bytes(voxels, draw)
    if not detached:
        return header + voxels, f".{kind}"
    return bundle([(f"v.{kind}", header), ("v.raw", voxels)]), ".bundle"
