"""Decode DICOM pixel data (any transfer syntax pydicom's plugins handle) into HU, in parallel.

Compressed syntaxes (JPEG 2000, JPEG lossless, JPEG-LS, RLE) are decoded by
pydicom 3's pixel-data plugins backed by the pylibjpeg / pyjpegls decoders,
one slice per task. Stored values become HU as ``raw * RescaleSlope +
RescaleIntercept``. In CT, pixels equal to PixelPaddingValue (or inside the padding
range) become air (-1024 HU); other modalities keep their values (padding means "outside
the field of view" there too, but its value is no tissue value: nothing is rewritten).
Siemens mosaics are decoded once per file and cut into their tiles (:mod:`ctlens.io.mosaic`).
Whatever a decoder raises on damaged data (an exception, or a Rust decoder's panic, which Python sees as a
:class:`BaseException`) becomes a :class:`~ctlens.core.errors.CorruptFileError` naming the file.

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
from ctlens.io.dicom_parse import encapsulated_frame
from ctlens.io.j2k_plugin import PLUGIN_LABEL, decode_plane
from ctlens.io.j2k_plugin import register as register_j2k_plugin
from ctlens.io.mosaic import tile

AIR_HU = -1024
NOT_DECODER_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)
"""What a decode may raise that is not the data's fault. Anything else is: a Rust decoder's panic (pylibjpeg-rle
indexing past a damaged segment) is a ``pyo3_runtime.PanicException``, a :class:`BaseException`, not an Exception."""
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


def header_int(ref: SliceRef, keyword: str, default: int, low: int, high: int) -> int:
    """The header's integer ``keyword`` (``default`` when absent) in ``low..high``, else :class:`CorruptFileError`.

    An integer, or a decimal integer string (an IS value, or what an odd VR gives); anything else (a fraction,
    ``nan``, ``1e308``, bytes of an unknown VR, several values) names the file and the element.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> from ctlens.io.dicom_source import CandidateFile
        >>> ds = Dataset(); ds.BitsStored = 12
        >>> file = CandidateFile(Path("a.dcm"), "a.dcm")
        >>> ref = SliceRef(file, None, ds, np.zeros(3), np.zeros(6), (1, 1), 2, 2, 1, 0, "")
        >>> header_int(ref, "BitsStored", 16, 1, 64), header_int(ref, "BitsAllocated", 16, 1, 64)
        (12, 16)
    """
    value = ref.value(keyword)
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value) <= 20 and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if number is None or not low <= number <= high:
        shown = str(value) if isinstance(value, int) else repr(value)[:40]
        raise CorruptFileError(f"{keyword} is {shown}, not an integer in {low}..{high}", path=ref.file.display)
    return number


def bit_depths(ref: SliceRef) -> tuple[int, int]:
    """``(BitsAllocated, BitsStored)`` checked: 1 <= BitsStored <= BitsAllocated <= 64 (absent: 16, allocated).

    Example:
        >>> from pydicom.dataset import Dataset
        >>> from ctlens.io.dicom_source import CandidateFile
        >>> ds = Dataset(); ds.BitsAllocated = 16; ds.BitsStored = 12
        >>> file = CandidateFile(Path("a.dcm"), "a.dcm")
        >>> bit_depths(SliceRef(file, None, ds, np.zeros(3), np.zeros(6), (1, 1), 2, 2, 1, 0, ""))
        (16, 12)
    """
    bits = header_int(ref, "BitsAllocated", 16, 1, 64)
    return bits, header_int(ref, "BitsStored", bits, 1, bits)


EXPANSION_FLOOR = 64 << 20
"""Declared pixel bytes a compressed file may always hold; above it, at most the archive ratio times its size."""


def check_expansion(ref: SliceRef, frames: int) -> None:
    """Refuse a compressed file whose header declares more decoded pixel bytes than its size can plausibly hold.

    Decoders allocate ``frames x Rows x Columns x samples x bytes`` before they find the data short; above
    :data:`EXPANSION_FLOOR` that must stay within ``CTLENS_MAX_ARCHIVE_RATIO`` times the file's size.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> from ctlens.io.dicom_source import CandidateFile
        >>> file = CandidateFile(Path(__file__), "a.dcm")
        >>> plane = lambda n: SliceRef(file, None, Dataset(), np.zeros(3), np.zeros(6), (1, 1), n, n, 1, 0, "")
        >>> check_expansion(plane(512), 1)
        >>> check_expansion(plane(65535), 9)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.core.errors.CorruptFileError: a.dcm: declares 77307052050 bytes of pixels, over ...
    """
    rows, columns = ref.rows, ref.columns
    if ref.mosaic is not None:
        rows, columns = ref.mosaic.rows * ref.mosaic.grid, ref.mosaic.columns * ref.mosaic.grid  # the whole grid
    bits = bit_depths(ref)[0]
    declared = frames * rows * columns * header_int(ref, "SamplesPerPixel", 1, 1, 64) * ((bits + 7) // 8)
    if declared <= EXPANSION_FLOOR:
        return
    from ctlens.core.settings import get_settings

    ratio = float(get_settings().max_archive_ratio)
    try:
        size = os.path.getsize(ref.file.path)
    except OSError:
        size = 0
    if declared > ratio * size:
        raise CorruptFileError(
            f"declares {declared} bytes of pixels, over {ratio:.0f}x the {size} bytes of the compressed file",
            path=ref.file.display,
            hint="the header's Rows / Columns / NumberOfFrames do not match the pixel data",
        )


GRAYSCALE = frozenset({"MONOCHROME1", "MONOCHROME2"})
"""PhotometricInterpretation values whose stored values are intensities (absent: grayscale too)."""


def check_grayscale(ref: SliceRef) -> None:
    """Refuse a plane whose stored values are not intensities: several samples, or a colour interpretation.

    A PALETTE COLOR plane stores indexes into a colour table and an RGB / YBR one colour samples; read as
    ``raw * slope + intercept`` they would be a volume of wrong numbers, so the header is checked before decoding.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> from ctlens.io.dicom_source import CandidateFile
        >>> ds = Dataset(); ds.PhotometricInterpretation = "PALETTE COLOR"
        >>> check_grayscale(SliceRef(CandidateFile(Path("a.dcm"), "a.dcm"), None, ds, np.zeros(3), np.zeros(6),
        ...     (1, 1), 2, 2, 1, 0, ""))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.core.errors.UnsupportedFormatError: a.dcm: PhotometricInterpretation is 'PALETTE COLOR': a colour ...
    """
    samples = header_int(ref, "SamplesPerPixel", 1, 1, 64)
    photometric = ref.value("PhotometricInterpretation")
    text = photometric.strip().upper() if isinstance(photometric, str) else photometric
    if samples == 1 and (text is None or text in GRAYSCALE):
        return
    shown = (
        f"SamplesPerPixel is {samples}" if samples != 1 else f"PhotometricInterpretation is {str(photometric)[:40]!r}"
    )
    raise UnsupportedFormatError(
        f"{shown}: a colour image, not grayscale intensities (MONOCHROME1 / MONOCHROME2, one sample per pixel)",
        path=ref.file.display,
        hint="give the grayscale CT / MR series, not a colour (secondary capture) image",
    )


def _native_plane(ref: SliceRef) -> np.ndarray:
    """Stored values of an uncompressed single-frame slice straight from its bytes (no copy through pydicom).

    Where the one-pass parser noted the pixel data's offset, the values are read from there into a new array (one
    read, no pydicom); else from the header's deferred PixelData.
    """
    bits, bits_stored = bit_depths(ref)
    if bits not in (8, 16, 32) or header_int(ref, "SamplesPerPixel", 1, 1, 64) != 1:
        return _decode_file(ref.file.path, ref.file.display, None)
    signed = ref.value("PixelRepresentation") == 1
    order = ">" if ref.transfer_syntax == ExplicitVRBigEndian else "<"
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder(order)
    # a mosaic's whole stored image, not one tile; other planes were measured when their header was read
    rows, columns = (ref.rows, ref.columns)
    if ref.mosaic is not None:
        rows, columns = int(ref.value("Rows")), int(ref.value("Columns"))
    needed = rows * columns
    if ref.pixel_offset is not None:
        plane = _read_at(ref, dtype, needed)
    else:
        try:
            data = ref.header.PixelData
        except Exception as exc:  # noqa: BLE001 - a deferred read of a damaged file fails in many ways
            raise CorruptFileError(f"cannot read pixel data ({exc})", path=ref.file.display) from None
        if data is not None and not isinstance(data, bytes | bytearray | memoryview):  # e.g. written with VR UL
            raise CorruptFileError(f"PixelData is a {type(data).__name__}, not pixel bytes", path=ref.file.display)
        if data is None or len(data) < needed * dtype.itemsize:
            _truncated(ref, 0 if data is None else len(data), needed * dtype.itemsize)
        plane = np.frombuffer(data, dtype=dtype, count=needed)
    plane = plane.reshape(rows, columns)
    if bits_stored < bits:  # mask unused high bits, sign-extending signed data as pydicom does
        shift = bits - bits_stored
        plane = (plane << shift) >> shift if signed else plane & ((1 << bits_stored) - 1)
    return plane.astype(dtype.newbyteorder("="), copy=False)


def _j2k_plane(ref: SliceRef, threads: int = 1) -> np.ndarray | None:
    """A JPEG 2000 slice decoded from the codestream at its noted offset (no second pydicom read), else None.

    ``threads``: the decoder's own threads for this slice (:func:`ctlens.io.j2k_plugin.decode_plane`).
    """
    if ref.pixel_offset is None or ref.pixel_length != 0xFFFFFFFF or ref.mosaic is not None:
        return None
    if header_int(ref, "SamplesPerPixel", 1, 1, 64) != 1 or header_int(ref, "NumberOfFrames", 1, 1, 2**31) != 1:
        return None
    codestream = encapsulated_frame(ref.file.path, ref.pixel_offset)
    if codestream is None:
        return None
    signed = ref.value("PixelRepresentation") == 1
    return decode_plane(codestream, ref.rows, ref.columns, signed, bit_depths(ref)[0], threads)


def _truncated(ref: SliceRef, got: int, needed: int) -> None:
    raise CorruptFileError(
        f"pixel data is truncated ({got} of {needed} bytes)", path=ref.file.display, hint="re-export the file"
    )


def _read_at(ref: SliceRef, dtype: np.dtype, count: int) -> np.ndarray:
    """``count`` stored values from the file at the pixel data's offset (the GIL is released while reading)."""
    plane = np.empty(count, dtype=dtype)
    if ref.pixel_length is not None and ref.pixel_length < plane.nbytes:
        _truncated(ref, ref.pixel_length, plane.nbytes)
    try:
        with open(ref.file.path, "rb") as handle:
            handle.seek(ref.pixel_offset or 0)
            got = handle.readinto(memoryview(plane).cast("B"))
    except OSError as exc:
        raise CorruptFileError(f"cannot read pixel data ({exc.strerror or exc})", path=ref.file.display) from None
    if got < plane.nbytes:
        _truncated(ref, got, plane.nbytes)
    return plane


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
    except BaseException as exc:  # noqa: BLE001 - decoders raise many types for corrupt data (module docstring)
        if isinstance(exc, NOT_DECODER_FAILURES):
            raise
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
    pad = ref.value("PixelPaddingValue")
    if not _is_sample(pad) or ref.modality != "CT":
        return None  # absent, or not one integer (several values, bytes of an unknown VR): no padding
    limit = ref.value("PixelPaddingRangeLimit")
    if not _is_sample(limit):
        return raw == pad
    lo, hi = sorted((int(pad), int(limit)))
    return (raw >= lo) & (raw <= hi)


def _is_sample(value: object) -> bool:
    """Whether a padding value is one integer (what PixelPaddingValue / PixelPaddingRangeLimit hold)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _integral(slope: float, intercept: float) -> bool:
    return float(slope).is_integer() and float(intercept).is_integer()


def _fits_int16(raw: np.ndarray, slope: float, intercept: float, ends: tuple[float, float] | None = None) -> bool:
    """Whether ``raw * slope + intercept`` (and air) fit in int16; ``ends``: ``raw``'s (min, max) if known."""
    if not raw.size:
        return True
    low, high = ends if ends is not None else (float(raw.min()), float(raw.max()))
    hu = (low * slope + intercept, high * slope + intercept)
    return -32768 <= min(*hu, AIR_HU) and max(*hu, AIR_HU) <= 32767


def _to_hu(raw: np.ndarray, slope: float, intercept: float, high: float, out: np.ndarray) -> None:
    """``out[...] = raw * slope + intercept``; int16 output in 16-bit integer arithmetic where that is exact.

    ``high``: ``raw``'s largest value. For an int16 ``out`` the caller has checked that every result fits.
    """
    small = raw.dtype in (np.int8, np.uint8, np.int16) or (raw.dtype == np.uint16 and high <= 32767)
    if out.dtype == np.int16 and slope == 1.0 and -32768 <= intercept <= 32767 and small:
        stored = raw.view(np.int16) if raw.dtype == np.uint16 else raw.astype(np.int16, copy=False)
        np.add(stored, np.int16(intercept), out=out)  # exact: the results fit (checked), no wider temporary
    elif out.dtype == np.int16 and slope == 1.0:
        np.add(raw, np.int64(intercept), out=out, casting="unsafe")  # exact integers, cast once
    elif slope == 1.0:
        np.add(raw, intercept, out=out, casting="unsafe")
    else:
        out[...] = raw.astype(np.float64) * slope + intercept


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

    def planes(job: tuple[Path, list[int]], threads: int) -> list[np.ndarray]:
        path, idx = job
        first = refs[idx[0]]
        syntax = first.transfer_syntax
        plugin = _plugin_for(syntax)
        if first.frame is None and syntax in NATIVE_SYNTAXES:
            plane = _native_plane(first)
        elif first.frame is None and syntax == DeflatedExplicitVRLittleEndian:  # pixel_array(path) cannot inflate
            plane = _decode_file(path, first.file.display, [0], plugin)[0]
        elif first.frame is None:
            plane = _j2k_plane(first, threads) if plugin == PLUGIN_LABEL else None
            if plane is None:
                plane = _decode_file(path, first.file.display, None, plugin)
        if first.frame is None and first.mosaic is not None:
            return [tile(plane, first.mosaic, refs[i].tile or 0) for i in idx]
        if first.frame is None:
            return [plane]
        stack = _decode_file(path, first.file.display, [refs[i].frame for i in idx], plugin)
        return list(stack)

    if refs[0].transfer_syntax in NATIVE_SYNTAXES:
        n = 1  # uncompressed: a slice is read and converted in ~0.1 ms; handing it to a thread costs as much (measured)
    else:
        n = workers or default_workers()  # the setting is read only here (reading it costs a few ms)
    for _, idx in jobs:  # decoders allocate what headers declare: measured before anything is allocated
        first = refs[idx[0]]
        check_grayscale(first)
        if first.transfer_syntax not in NATIVE_SYNTAXES:
            check_expansion(first, 1 if first.frame is None else header_int(first, "NumberOfFrames", 1, 1, 2**31))
        elif first.pixel_length is not None and first.mosaic is None and first.frame is None:
            needed = first.rows * first.columns * bit_depths(first)[0] // 8  # a lower bound (1-bit data packed)
            if first.pixel_length < needed:
                _truncated(first, first.pixel_length, needed)
    integral = all(_integral(r.slope, r.intercept) for r in refs)
    out = np.empty((len(refs), refs[0].rows, refs[0].columns), dtype=np.int16 if integral else np.float32)

    def run(k: int) -> list[tuple[int, np.ndarray, float]]:
        """Decode the job's planes and write their HU into ``out`` (in the worker: numpy releases the GIL).

        Planes whose HU do not fit an int16 ``out`` come back as ``(index, stored values, largest value)``: ``out``
        is widened once, after every worker is done (no worker writes into an array being replaced).
        """
        wide = []
        # the last files leave cores idle before they are done (one file alone: all but one): the last m files
        # share the n cores, n // m threads each (measured: one JPEG 2000 slice alone 34 -> 23 ms on 2 cores)
        threads = max(1, n // (len(jobs) - k))
        for i, raw in zip(jobs[k][1], planes(jobs[k], threads), strict=True):
            ref = refs[i]
            if raw.shape != (ref.rows, ref.columns):
                raise CorruptFileError(
                    f"pixel array is {raw.shape}, header says {ref.rows}x{ref.columns}", path=ref.file.display
                )
            low, high = (float(raw.min()), float(raw.max())) if raw.size else (0.0, 0.0)
            if out.dtype == np.int16 and not _fits_int16(raw, ref.slope, ref.intercept, (low, high)):
                wide.append((i, raw, high))
            else:
                _plane_hu(ref, raw, high, out[i])
        return wide

    with contextlib.ExitStack() as stack:
        if n > 1 and len(jobs) > 1:  # decoders release the GIL: slices decode on every core
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=n))
            results: Iterator[list[tuple[int, np.ndarray, float]]] = pool.map(run, range(len(jobs)))
        else:
            results = map(run, range(len(jobs)))
        wide = [plane for found in results for plane in found]
    if wide:
        out = out.astype(np.float32)  # exact: every int16 is a float32
        for i, raw, high in wide:
            _plane_hu(refs[i], raw, high, out[i])
    return out


def _plane_hu(ref: SliceRef, raw: np.ndarray, high: float, out: np.ndarray) -> None:
    """``out[...]``: the HU of one plane's stored values ``raw`` (largest ``high``), padding set to air; the stored
    bytes then leave the header (they are in ``out``; headers live on in refs)."""
    pad = _padding_mask(ref, raw)
    _to_hu(raw, ref.slope, ref.intercept, high, out)
    if pad is not None:
        np.copyto(out, AIR_HU, where=pad)
    if "PixelData" in ref.header:
        del ref.header.PixelData
