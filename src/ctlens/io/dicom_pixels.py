"""Decode DICOM pixel data (any transfer syntax pydicom's plugins handle) into HU, in parallel.

Compressed syntaxes (JPEG 2000, JPEG lossless, JPEG-LS, RLE) are decoded by
pydicom 3's pixel-data plugins backed by the pylibjpeg / pyjpegls decoders,
one slice per task. Stored values become HU as ``raw * RescaleSlope +
RescaleIntercept``. In CT, pixels equal to PixelPaddingValue (or inside the padding
range) become air (-1024 HU); other modalities keep their values (padding means "outside
the field of view" there too, but its value is no tissue value: nothing is rewritten).
Siemens mosaics are decoded once per file and cut into their tiles (:mod:`ctlens.io.mosaic`).

Example:
    >>> import numpy as np
    >>> hu_dtype([np.array([0, 4095], np.uint16)], [1.0], [-1024.0])
    dtype('int16')
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import pixel_array
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from ctlens.core.errors import CorruptFileError, UnsupportedFormatError
from ctlens.io.dicom_headers import SliceRef
from ctlens.io.j2k_plugin import PLUGIN_LABEL
from ctlens.io.j2k_plugin import register as register_j2k_plugin
from ctlens.io.mosaic import tile

AIR_HU = -1024
NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian})


def default_workers() -> int:
    """Decode threads: ``CTLENS_DECODE_WORKERS`` or one per CPU core."""
    from ctlens.core.settings import get_settings

    return get_settings().decode_workers or os.cpu_count() or 1


def _plugin_for(transfer_syntax: str) -> str:
    """Our GIL-free JPEG 2000 plugin where it applies, else pydicom's choice ("")."""
    if transfer_syntax in (JPEG2000Lossless, JPEG2000) and register_j2k_plugin():
        return PLUGIN_LABEL
    return ""


def _native_plane(ref: SliceRef) -> np.ndarray:
    """Stored values of an uncompressed single-frame slice straight from its bytes (no copy through pydicom)."""
    ds = ref.header
    bits = int(ds.get("BitsAllocated", 16))
    if bits not in (8, 16, 32) or int(ds.get("SamplesPerPixel", 1)) != 1:
        return _decode_file(ref.file.path, ref.file.display, None)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    order = ">" if str(ds.file_meta.get("TransferSyntaxUID", "")) == ExplicitVRBigEndian else "<"
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder(order)
    try:
        data = ds.PixelData
    except Exception as exc:  # noqa: BLE001 - a deferred read of a damaged file fails in many ways
        raise CorruptFileError(f"cannot read pixel data ({exc})", path=ref.file.display) from None
    # a mosaic's whole stored image, not one tile; other planes were measured when their header was read
    rows, columns = (int(ds.Rows), int(ds.Columns)) if ref.mosaic is not None else (ref.rows, ref.columns)
    needed = rows * columns * dtype.itemsize
    if data is None or len(data) < needed:
        got = 0 if data is None else len(data)
        raise CorruptFileError(
            f"pixel data is truncated ({got} of {needed} bytes)", path=ref.file.display, hint="re-export the file"
        )
    plane = np.frombuffer(data, dtype=dtype, count=rows * columns).reshape(rows, columns)
    bits_stored = int(ds.get("BitsStored", bits))
    if bits_stored < bits:  # mask unused high bits, sign-extending signed data as pydicom does
        shift = bits - bits_stored
        plane = (plane << shift) >> shift if signed else plane & ((1 << bits_stored) - 1)
    return plane.astype(dtype.newbyteorder("="), copy=False)


def _decode_file(path: Path, display: str, frames: list[int] | None, plugin: str = "") -> np.ndarray:
    """Stored values of one file: ``(rows, cols)`` or ``(n_frames, rows, cols)``."""
    try:
        if frames is None:
            arr = pixel_array(os.fspath(path), decoding_plugin=plugin)
        else:
            ds = pydicom.dcmread(path)
            if plugin:
                ds.pixel_array_options(decoding_plugin=plugin)
            arr = ds.pixel_array
            arr = arr[None] if arr.ndim == 2 else arr
            arr = arr[frames]
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for corrupt data
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFileError(
            f"cannot decode pixel data ({reason})",
            path=display,
            hint="the file may be truncated or use an unsupported transfer syntax",
        ) from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and frames is None):
        raise CorruptFileError(f"expected a grayscale image, got pixel array of shape {arr.shape}", path=display)
    return arr


def _padding_mask(ref: SliceRef, raw: np.ndarray) -> np.ndarray | None:
    """Pixels to set to air: PixelPaddingValue (or the padding range) in CT only (module docstring)."""
    pad = ref.header.get("PixelPaddingValue")
    if pad is None or ref.modality != "CT":
        return None
    limit = ref.header.get("PixelPaddingRangeLimit")
    if limit is None:
        return raw == pad
    lo, hi = sorted((int(pad), int(limit)))
    return (raw >= lo) & (raw <= hi)


def _integral(slope: float, intercept: float) -> bool:
    return float(slope).is_integer() and float(intercept).is_integer()


def _fits_int16(raw: np.ndarray, slope: float, intercept: float) -> bool:
    if not raw.size:
        return True
    ends = (float(raw.min()) * slope + intercept, float(raw.max()) * slope + intercept)
    return -32768 <= min(*ends, AIR_HU) and max(*ends, AIR_HU) <= 32767


def hu_dtype(raws: list[np.ndarray], slopes: list[float], intercepts: list[float]) -> np.dtype:
    """int16 when HU are integers that fit, else float32.

    Example:
        >>> hu_dtype([np.array([0, 4000], np.uint16)], [1.0], [-1024.0]), hu_dtype([np.zeros(2)], [0.5], [0.0])
        (dtype('int16'), dtype('float32'))
    """
    ok = all(_integral(s, i) and _fits_int16(r, s, i) for r, s, i in zip(raws, slopes, intercepts, strict=True))
    return np.dtype(np.int16) if ok else np.dtype(np.float32)


def exact_int16(values: np.ndarray, path: object, reason: str, hint: str) -> np.ndarray:
    """``values`` as int16 when they are integers that fit, else :class:`UnsupportedFormatError` (``reason``).

    Example:
        >>> exact_int16(np.array([1.0, -2.0], np.float32), "scan.nii", "", "").dtype
        dtype('int16')
    """
    if values.dtype == np.int16:
        return values
    rounded = np.round(values)
    if not np.array_equal(rounded, values) or rounded.min() < -32768 or rounded.max() > 32767:
        raise UnsupportedFormatError(
            f"the image holds non-integer or out-of-range values ({values.dtype}); {reason}", path=path, hint=hint
        )
    return rounded.astype(np.int16)


def decode_hu(refs: list[SliceRef], workers: int | None = None) -> np.ndarray:
    """Decode the planes ``refs`` (in the given order) into a ``[z, y, x]`` HU array (int16 when it fits, else float32).

    Each decoded plane goes straight into the output and its stored bytes are released from the header, so memory
    peaks near the size of the output, not twice it. The output starts as int16 when every slope / intercept is an
    integer and is widened once to float32 if a plane's HU do not fit (the values are the same either way).
    """
    by_file: dict[Path, list[int]] = defaultdict(list)
    for i, ref in enumerate(refs):
        by_file[ref.file.path].append(i)
    jobs = list(by_file.items())

    def run(job: tuple[Path, list[int]]) -> list[np.ndarray]:
        path, idx = job
        first = refs[idx[0]]
        syntax = str(first.header.file_meta.get("TransferSyntaxUID", ""))
        plugin = _plugin_for(syntax)
        if first.frame is None and syntax in NATIVE_SYNTAXES:
            plane = _native_plane(first)
        elif first.frame is None and syntax == DeflatedExplicitVRLittleEndian:  # pixel_array(path) cannot inflate
            plane = _decode_file(path, first.file.display, [0], plugin)[0]
        elif first.frame is None:
            plane = _decode_file(path, first.file.display, None, plugin)
        if first.frame is None and first.mosaic is not None:
            return [tile(plane, first.mosaic, refs[i].tile or 0) for i in idx]
        if first.frame is None:
            return [plane]
        stack = _decode_file(path, first.file.display, [refs[i].frame for i in idx], plugin)
        return list(stack)

    n = workers or default_workers()
    syntax = str(refs[0].header.file_meta.get("TransferSyntaxUID", "")) if hasattr(refs[0].header, "file_meta") else ""
    if syntax in NATIVE_SYNTAXES:
        n = 1  # uncompressed: copying bytes is cheaper than handing slices to threads (the GIL is held)
    integral = all(_integral(r.slope, r.intercept) for r in refs)
    out = np.empty((len(refs), refs[0].rows, refs[0].columns), dtype=np.int16 if integral else np.float32)
    with contextlib.ExitStack() as stack:
        if n > 1 and len(jobs) > 1:
            results: Iterator[list[np.ndarray]] = stack.enter_context(ThreadPoolExecutor(max_workers=n)).map(run, jobs)
        else:
            results = map(run, jobs)
        for (_, idx), planes in zip(jobs, results, strict=True):
            for i, raw in zip(idx, planes, strict=True):
                ref = refs[i]
                if raw.shape != (ref.rows, ref.columns):
                    raise CorruptFileError(
                        f"pixel array is {raw.shape}, header says {ref.rows}x{ref.columns}", path=ref.file.display
                    )
                if out.dtype == np.int16 and not _fits_int16(raw, ref.slope, ref.intercept):
                    out = out.astype(np.float32)  # exact: every int16 is a float32
                if ref.slope == 1.0:
                    np.add(raw, ref.intercept, out=out[i], casting="unsafe")
                else:
                    out[i] = raw.astype(np.float64) * ref.slope + ref.intercept
                pad = _padding_mask(ref, raw)
                if pad is not None:
                    out[i][pad] = AIR_HU
                if "PixelData" in ref.header:
                    del ref.header.PixelData  # the stored bytes are in ``out`` now (headers live on in refs)
    return out
