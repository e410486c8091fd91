"""Compress a CT series into a ``.ctz`` file and back: streaming encode, full decode, random-access decode.

``mode="lossless"`` keeps every sample bit-exact. ``mode="roi"`` keeps samples inside the detected ROI
(:func:`ctlens.codec.roi.detect_roi`) bit-exact and every other sample within ``max_error`` (HU for CT).

Encoding reads slices one at a time (any iterable of 2-D arrays, a ``np.memmap`` or a :class:`Volume`), encodes
them in a small thread pool (the entropy coders release the GIL) and writes each to disk as soon as it and its
predecessors are done, so memory stays bounded by a few slices whatever the series length.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> vol = np.random.default_rng(0).integers(-1024, 2000, (3, 16, 16)).astype(np.int16)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.ctz"
    >>> stats = encode_volume(vol, path)
    >>> np.array_equal(decode_volume(path).array, vol), np.array_equal(decode_slice(path, 2), vol[2])
    (True, True)
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ctlens import __version__
from ctlens.codec import backends
from ctlens.codec import roi as roi_mod
from ctlens.codec.container import FOOTER, RECORD, CtzReader, CtzWriter
from ctlens.codec.ctz_json import JSON_FORMAT, as_ctz, export_json, import_json
from ctlens.codec.header_rules import SeriesHeader, check_header, open_checked
from ctlens.codec.slice_codec import INTRA, decode_signal, encode_slice, finish_slice
from ctlens.core.errors import CorruptFileError, CTLensError, UnsupportedFormatError
from ctlens.core.progress import ProgressCallback, announce
from ctlens.core.volume import Volume
from ctlens.io.uid_hash import deidentify_meta

__all__ = [
    "JSON_FORMAT",
    "PROFILES",
    "PROFILE_EFFORT",
    "CodecStats",
    "decode_slice",
    "decode_volume",
    "encode_slices",
    "encode_volume",
    "export_json",
    "import_json",
    "read_info",
]

PROFILES: dict[str, tuple[str, ...]] = {
    "compact": ("jpegls",),
    "fast": ("htj2k",),
    "thorough": ("jpegls", "htj2k", "blosc2"),
    "small": ("jpegls", "jpegxl"),
    "smallest": ("jpegls", "jpegxl"),
}
"""Entropy stages tried per slice (smallest stream wins). Chosen by measurement (see docs/codec.md): JPEG-LS is
the fastest small coder, HTJ2K decodes about 3x faster at about 5 % larger files, JPEG XL (``small``: effort 3,
``smallest``: effort 7) is 0-20 % smaller than JPEG-LS at 3-30x its encode time."""
PROFILE_EFFORT: dict[str, int] = {"small": 3, "smallest": 7}
"""JPEG XL effort of the profiles that try JPEG XL (others: 7, unused)."""
DEFAULT_KEYFRAME_INTERVAL = 16
"""Every this many slices one is coded without the previous slice, so random access decodes at most this many."""


@dataclasses.dataclass
class CodecStats:
    """Size, ratio, ROI coverage, maximum error and timings of one encode (or decode)."""

    n_slices: int = 0
    raw_bytes: int = 0
    encoded_bytes: int = 0
    roi_coverage: float = 1.0
    max_error: int = 0
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    mode: str = "lossless"
    backends: dict[str, int] = dataclasses.field(default_factory=dict)
    inter_slices: int = 0

    @property
    def ratio(self) -> float:
        """raw bytes / file bytes."""
        return self.raw_bytes / self.encoded_bytes if self.encoded_bytes else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready), including ``ratio``."""
        out = dataclasses.asdict(self)
        out["ratio"] = self.ratio
        return out


def _restored_meta(stored: dict[str, Any]) -> dict[str, Any]:
    """The reader's meta from a header's: ``source_sop_uids`` equal to ``sop_uids`` is written once."""
    meta = dict(stored)
    if "source_sop_uids" not in meta and meta.get("sop_uids"):
        meta["source_sop_uids"] = list(meta["sop_uids"])
    return meta


def _geometry_header(volume: Volume | None, shape_yx: tuple[int, int], dtype: np.dtype) -> dict[str, Any]:
    v = volume or Volume(np.zeros((1, 1, 1), np.int16))
    # The reader's meta is de-identified already; a Volume built by hand may carry anything, and a .ctz leaves
    # the process, so the writer filters once more at this exit (idempotent on the reader's meta).
    meta = deidentify_meta(json.loads(json.dumps(v.meta or {}, default=str)))
    if meta.get("source_sop_uids") and meta.get("source_sop_uids") == meta.get("sop_uids"):
        del meta["source_sop_uids"]  # the usual case (nothing resampled): stored once, restored by _restored_meta
    return {
        "format": "ctz",
        "created_by": f"ctlens {__version__}",
        "shape_yx": [int(shape_yx[0]), int(shape_yx[1])],
        "dtype": np.dtype(dtype).str,
        "spacing": [float(s) for s in v.spacing],
        "origin": [float(o) for o in v.origin],
        "direction": np.asarray(v.direction, float).tolist(),
        "modality": str(v.modality),
        "meta": meta,
    }


def _check_dtype(dtype: np.dtype, path: Path) -> None:
    if dtype.kind not in "iub" or dtype.itemsize > 4:
        raise UnsupportedFormatError(
            f"ctz stores integer samples, the series has dtype {dtype}",
            path=path,
            hint="round to int16 HU first, or save as NIfTI",
        )


class _Counter:
    """The two calls of a rich ``Progress`` used here, told to a progress callback (``ctlens.core.progress``)."""

    def __init__(self, callback: ProgressCallback, total: int | None) -> None:
        self.callback, self.done, self.total = callback, 0, total or 0
        callback(0, self.total)

    def add_task(self, _description: str, total: int | None = None) -> None:
        self.total = total or 0

    def advance(self, _task: Any) -> None:
        self.done += 1
        self.callback(self.done, self.total)


def _progress(enabled: bool | ProgressCallback, total: int | None, label: str) -> Any:
    if callable(enabled):
        announce(enabled, label)
        return contextlib.nullcontext(_Counter(enabled, total))
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    return prog


def encode_slices(
    slices: Iterable[np.ndarray],
    path: str | Path,
    *,
    geometry: Volume | None = None,
    n_slices: int | None = None,
    mode: str = "lossless",
    max_error: int = 5,
    profile: str = "compact",
    roi_percentile: float = roi_mod.DEFAULT_PERCENTILE,
    dilation_mm: float = roi_mod.DEFAULT_DILATION_MM,
    min_size: int = roi_mod.DEFAULT_MIN_SIZE,
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
    level: int = 5,
    predict: str = "estimate",
    effort: int | None = None,
    workers: int | None = None,
    progress: bool | ProgressCallback = False,
    roi_fn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> CodecStats:
    """Encode 2-D slices (in z order) into ``path``; ``geometry`` gives spacing/origin/direction/meta.

    ``effort`` overrides the profile's JPEG XL effort (1-9). ``n_slices`` only sizes the progress bar.
    ``roi_fn(slice) -> bool mask`` replaces the built-in ROI detector in ``mode="roi"`` (pixels in the mask are
    kept exactly). Returns the :class:`CodecStats` also stored in the file.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "g.ctz"
        >>> gen = (np.full((8, 8), k, np.int16) for k in range(5))
        >>> encode_slices(gen, path).n_slices
        5
    """
    path = Path(path)
    if mode not in ("lossless", "roi"):
        raise ValueError(f"mode must be 'lossless' or 'roi', got {mode!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    near = int(max_error) if mode == "roi" else 0
    if mode == "roi" and not 0 <= near <= 127:  # the ROI correction layer is int8
        raise ValueError(f"max_error must be within 0..127 HU, got {max_error}")
    candidates = PROFILES[profile]
    effort = PROFILE_EFFORT.get(profile, 7) if effort is None else int(effort)
    if not 1 <= effort <= 9:
        raise ValueError(f"JPEG XL effort must be within 1..9, got {effort}")
    spacing = geometry.spacing if geometry is not None else (1.0, 1.0, 1.0)
    workers = workers or min(2, os.cpu_count() or 1)
    stats = CodecStats(mode=mode)
    start = time.perf_counter()
    it: Iterator[np.ndarray] = iter(slices)
    try:
        first = np.asarray(next(it))
    except StopIteration:
        raise ValueError(f"{path}: no slices to encode") from None
    if first.ndim != 2:
        raise ValueError(f"{path}: slices must be 2-D [y, x], got shape {first.shape}")
    dtype = first.dtype
    _check_dtype(dtype, path)
    shape = first.shape
    header = _geometry_header(geometry, shape, dtype)
    check_header(header, path, n_slices=1, budget=2**63)  # what ctlens writes, ctlens reads back
    header["codec"] = {
        "mode": mode,
        "max_error": near,
        "profile": profile,
        "candidates": list(candidates),
        "keyframe_interval": int(keyframe_interval),
        "level": int(level),
        "predict": predict,
        "jpegxl_effort": effort if "jpegxl" in candidates else None,
        "roi": {"percentile": roi_percentile, "dilation_mm": dilation_mm, "min_size": min_size},
    }

    def job(k: int, x: np.ndarray, prev: np.ndarray | None) -> Any:
        if x.shape != shape or x.dtype != dtype:
            raise ValueError(f"{path}: slice {k} has shape {x.shape} {x.dtype}, expected {shape} {dtype}")
        mask = None
        if near > 0 and roi_fn is not None:
            mask = np.asarray(roi_fn(x), dtype=bool)
            if mask.shape != x.shape:
                raise ValueError(f"{path}: roi_fn gave a mask of shape {mask.shape} for slice {k} of shape {x.shape}")
        elif near > 0:
            mask = roi_mod.detect_roi(x, roi_percentile, dilation_mm, spacing, min_size)
        use_prev = prev if (near == 0 and keyframe_interval > 0 and k % keyframe_interval != 0) else None
        return encode_slice(
            x, use_prev, candidates=candidates, level=level, near=near, roi=mask, predict=predict, effort=effort
        )

    writer = CtzWriter(path, header)
    roi_pixels = 0
    try:
        with (
            concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool,
            _progress(progress, n_slices, f"compress {path.name}") as prog,
        ):
            task = prog.add_task("encode", total=n_slices) if prog is not None else None
            pending: collections.deque[Any] = collections.deque()
            prev: np.ndarray | None = None

            def drain(limit: int) -> None:
                nonlocal roi_pixels
                while len(pending) > limit:
                    enc = pending.popleft().result()
                    writer.add_slice(enc.main, enc.correction, enc.meta())
                    name = backends.BACKEND_NAMES[enc.backend]
                    stats.backends[name] = stats.backends.get(name, 0) + 1
                    stats.inter_slices += enc.predictor != INTRA
                    stats.max_error = max(stats.max_error, enc.max_error)
                    roi_pixels += enc.roi_pixels
                    if prog is not None:
                        prog.advance(task)

            k = 0
            for x in _chain(first, it):
                x = np.asarray(x)
                pending.append(pool.submit(job, k, x, prev))
                prev = x
                k += 1
                drain(2 * workers)
            drain(0)
        stats.n_slices = k
        stats.raw_bytes = k * shape[0] * shape[1] * dtype.itemsize
        stats.roi_coverage = roi_pixels / (k * shape[0] * shape[1]) if near > 0 else 1.0
        stats.encode_seconds = time.perf_counter() - start
        # The trailer holds the final file size, which includes the trailer itself: find the smallest size whose
        # JSON fits, and pad it with spaces (valid JSON whitespace) to exactly that size.
        fixed = writer.bytes_written + RECORD.size * k + FOOTER.size
        size = fixed
        while True:
            stats.encoded_bytes = size
            text = json.dumps({"stats": stats.as_dict()}, sort_keys=True, separators=(",", ":")).encode()
            if fixed + len(text) <= size:
                writer.trailer_bytes = text + b" " * (size - fixed - len(text))
                break
            size = fixed + len(text)
        writer.close()
    except BaseException as exc:
        writer.abort(exc)
        raise
    stats.encoded_bytes = path.stat().st_size
    return stats


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def encode_volume(volume: Volume | np.ndarray, path: str | Path, **options: Any) -> CodecStats:
    """Encode a :class:`Volume` (or a 3-D integer array, also a ``np.memmap``) slice by slice into ``path``.

    Options are those of :func:`encode_slices` (``mode``, ``max_error``, ``profile``, ``progress``, ...).

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.ctz"
        >>> encode_volume(np.zeros((2, 64, 64), np.int16), path).ratio > 10
        True
    """
    vol = volume if isinstance(volume, Volume) else Volume(np.asarray(volume))
    arr = vol.array
    return encode_slices((arr[k] for k in range(arr.shape[0])), path, geometry=vol, n_slices=arr.shape[0], **options)


def _decode_range(
    reader: CtzReader, geometry: SeriesHeader, start: int, stop: int, fh: Any, workers: int = 1
) -> Iterator[np.ndarray]:
    """Decoded slices start..stop-1 in order; entropy decoding runs in ``workers`` threads (GIL released)."""
    shape, dtype = geometry.shape_yx, geometry.dtype

    def signal(j: int, main: bytes, corr: bytes) -> np.ndarray:
        try:
            return decode_signal(reader.records[j].meta, main, corr, shape, dtype)
        except CTLensError as exc:
            raise CorruptFileError(f"slice {j}: cannot decode ({exc.reason})", path=reader.path) from exc
        except Exception as exc:  # noqa: BLE001 - any codec failure on a damaged or crafted stream
            raise CorruptFileError(f"slice {j}: cannot decode ({type(exc).__name__}: {exc})", path=reader.path) from exc

    prev: np.ndarray | None = None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    finished = False
    try:
        pending: collections.deque[Any] = collections.deque()
        j = start
        while j < stop or pending:
            while j < stop and len(pending) < 2 * max(1, workers):
                pending.append(pool.submit(signal, j, *reader.read_slice_streams(j, fh)))
                j += 1
            k = j - len(pending)
            prev = finish_slice(pending.popleft().result(), reader.records[k].meta, dtype, prev)
            yield prev
        finished = True
    finally:
        # on an error, answer now: slices already in a decoder are not waited for (a damaged JPEG-LS stream of
        # 178 bytes keeps CharLS 2.4 busy for seconds before it fails), slices not started are dropped
        pool.shutdown(wait=finished, cancel_futures=True)


def decode_slice(path: str | Path, k: int) -> np.ndarray:
    """Decode only slice ``k`` (and the few slices back to its key slice), checking their checksums.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> vol = np.arange(3 * 4 * 4, dtype=np.int16).reshape(3, 4, 4)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.ctz"
        >>> _ = encode_volume(vol, path)
        >>> decode_slice(path, 1).tolist() == vol[1].tolist()
        True
    """
    with as_ctz(path) as ctz:
        reader, geometry = open_checked(ctz)
        if not 0 <= k < reader.n_slices:
            raise IndexError(f"{path}: slice {k} out of range 0..{reader.n_slices - 1}")
        start = k
        while start > 0 and reader.records[start].meta.predictor != INTRA:
            start -= 1
        with reader.open() as fh:
            out = None
            for out in _decode_range(reader, geometry, start, k + 1, fh):  # noqa: B007
                pass
    assert out is not None
    return out


def decode_volume(
    path: str | Path, *, verify: bool = True, progress: bool | ProgressCallback = False, workers: int | None = None
) -> Volume:
    """Decode a whole ``.ctz`` file (or its JSON export) into a :class:`Volume` (checks the whole-file checksum
    unless ``verify=False``).

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.ctz"
        >>> _ = encode_volume(np.ones((2, 3, 3), np.int16), path)
        >>> decode_volume(path).shape
        (2, 3, 3)
    """
    start = time.perf_counter()
    with as_ctz(path) as ctz:
        return _decode_volume(ctz, Path(path).name, start, verify, progress, workers)


def _decode_volume(
    path: Path, name: str, start: float, verify: bool, progress: bool | ProgressCallback, workers: int | None
) -> Volume:
    reader, g = open_checked(path)
    if verify:
        reader.verify()
    n = reader.n_slices
    out: np.ndarray | None = None  # allocated once slice 0 decoded to the declared shape (no bomb from a header)
    with reader.open() as fh, _progress(progress, n, f"decompress {name}") as prog:
        task = prog.add_task("decode", total=n) if prog is not None else None
        for k, sl in enumerate(_decode_range(reader, g, 0, n, fh, workers or min(2, os.cpu_count() or 1))):
            if out is None:
                try:
                    out = np.empty((n, *g.shape_yx), dtype=g.dtype)
                except MemoryError:
                    raise CorruptFileError(
                        f"not enough memory for {n} slices of {g.shape_yx[0]}x{g.shape_yx[1]} {g.dtype}", path=path
                    ) from None
            out[k] = sl
            if prog is not None:
                prog.advance(task)
    assert out is not None  # n >= 1 (check_header)
    meta = _restored_meta(g.meta)
    meta["ctz_decode_seconds"] = time.perf_counter() - start
    return Volume(out, spacing=g.spacing, origin=g.origin, direction=g.direction, modality=g.modality, meta=meta)


def read_info(path: str | Path) -> dict[str, Any]:
    """Header (geometry, meta, codec parameters) and stored statistics of a ``.ctz`` (or JSON export), not decoded.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "i.ctz"
        >>> _ = encode_volume(np.ones((2, 3, 3), np.int16), path)
        >>> info = read_info(path); info["n_slices"], info["codec"]["mode"]
        (2, 'lossless')
    """
    with as_ctz(path) as ctz:
        reader, _ = open_checked(ctz)
    info = dict(reader.header)
    info["n_slices"] = reader.n_slices
    info["stats"] = reader.trailer.get("stats", {})
    info["format_version"] = list(reader.version)
    return info
