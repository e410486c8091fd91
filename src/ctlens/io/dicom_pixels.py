"""Decode DICOM pixel data (any transfer syntax pydicom's plugins handle) into HU, in parallel.

Compressed syntaxes (JPEG 2000, JPEG lossless, JPEG-LS, RLE) are decoded by
pydicom 3's pixel-data plugins backed by the pylibjpeg / pyjpegls decoders,
one slice per task. Stored values become HU as ``raw * RescaleSlope +
RescaleIntercept``; pixels equal to PixelPaddingValue (or inside the padding
range) become air (-1024 HU).

Example:
    >>> import numpy as np
    >>> hu_dtype([np.array([0, 4095], np.uint16)], [1.0], [-1024.0])
    dtype('int16')
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import pixel_array
from pydicom.uid import (
    JPEG2000,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from ctlens.core.errors import CorruptFileError
from ctlens.io.dicom_headers import SliceRef
from ctlens.io.j2k_plugin import PLUGIN_LABEL
from ctlens.io.j2k_plugin import register as register_j2k_plugin

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
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")
    try:
        data = ds.PixelData
    except Exception as exc:  # noqa: BLE001 - a deferred read of a damaged file fails in many ways
        raise CorruptFileError(f"cannot read pixel data ({exc})", path=ref.file.display) from None
    needed = ref.rows * ref.columns * dtype.itemsize
    if data is None or len(data) < needed:
        got = 0 if data is None else len(data)
        raise CorruptFileError(
            f"pixel data is truncated ({got} of {needed} bytes)", path=ref.file.display, hint="re-export the file"
        )
    plane = np.frombuffer(data, dtype=dtype, count=ref.rows * ref.columns).reshape(ref.rows, ref.columns)
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
    pad = ref.header.get("PixelPaddingValue")
    if pad is None:
        return None
    limit = ref.header.get("PixelPaddingRangeLimit")
    if limit is None:
        return raw == pad
    lo, hi = sorted((int(pad), int(limit)))
    return (raw >= lo) & (raw <= hi)


def hu_dtype(raws: list[np.ndarray], slopes: list[float], intercepts: list[float]) -> np.dtype:
    """int16 when HU are integers that fit, else float32."""
    integral = all(float(s).is_integer() and float(i).is_integer() for s, i in zip(slopes, intercepts, strict=True))
    if not integral:
        return np.dtype(np.float32)
    lo = min(float(r.min()) * s + i for r, s, i in zip(raws, slopes, intercepts, strict=True) if r.size)
    hi = max(float(r.max()) * s + i for r, s, i in zip(raws, slopes, intercepts, strict=True) if r.size)
    lo, hi = min(lo, AIR_HU), max(hi, AIR_HU)
    return np.dtype(np.int16) if -32768 <= lo and hi <= 32767 else np.dtype(np.float32)


def decode_hu(refs: list[SliceRef], workers: int | None = None) -> np.ndarray:
    """Decode the planes ``refs`` (in the given order) into a ``[z, y, x]`` HU array."""
    by_file: dict[Path, list[int]] = defaultdict(list)
    for i, ref in enumerate(refs):
        by_file[ref.file.path].append(i)
    jobs = list(by_file.items())

    def run(job: tuple[Path, list[int]]) -> list[np.ndarray]:
        path, idx = job
        first = refs[idx[0]]
        syntax = str(first.header.file_meta.get("TransferSyntaxUID", ""))
        plugin = _plugin_for(syntax)
        if first.frame is None and syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            return [_native_plane(first)]
        if first.frame is None:
            return [_decode_file(path, first.file.display, None, plugin)]
        stack = _decode_file(path, first.file.display, [refs[i].frame for i in idx], plugin)
        return list(stack)

    n = workers or default_workers()
    syntax = str(refs[0].header.file_meta.get("TransferSyntaxUID", "")) if hasattr(refs[0].header, "file_meta") else ""
    if syntax in NATIVE_SYNTAXES:
        n = 1  # uncompressed: copying bytes is cheaper than handing slices to threads (the GIL is held)
    if n > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(run, jobs))
    else:
        results = [run(job) for job in jobs]
    raws: list[np.ndarray] = [np.empty(0)] * len(refs)
    for (_, idx), planes in zip(jobs, results, strict=True):
        for i, plane in zip(idx, planes, strict=True):
            if plane.shape != (refs[i].rows, refs[i].columns):
                raise CorruptFileError(
                    f"pixel array is {plane.shape}, header says {refs[i].rows}x{refs[i].columns}",
                    path=refs[i].file.display,
                )
            raws[i] = plane
    slopes = [r.slope for r in refs]
    intercepts = [r.intercept for r in refs]
    dtype = hu_dtype(raws, slopes, intercepts)
    out = np.empty((len(refs), refs[0].rows, refs[0].columns), dtype=dtype)
    for k, (ref, raw) in enumerate(zip(refs, raws, strict=True)):
        if ref.slope == 1.0:
            np.add(raw, ref.intercept, out=out[k], casting="unsafe")
        else:
            out[k] = raw.astype(np.float64) * ref.slope + ref.intercept
        pad = _padding_mask(ref, raw)
        if pad is not None:
            out[k][pad] = AIR_HU
    return out
