"""Lossless CT compression: ctlens .ctz vs JPEG-LS, JPEG 2000, HTJ2K, PNG and blosc2-zstd on the same pixels.

Peers (imagecodecs, same process, same int16 pixels of every shared DICOM series, shifted to uint16 where the
codec needs unsigned samples): JPEG-LS (CharLS), JPEG 2000 reversible (OpenJPEG), HTJ2K (OpenJPH), PNG (libpng),
blosc2 zstd + shuffle. ctlens encodes/decodes through its real files (container, checksums included).
Each codec's best of ``--repeats`` rounds counts; rounds interleave the codecs so machine load hits all alike.
Peers run on one thread; ctlens rows run with 1 thread and (``2t``) with 2 threads. Ratios are relative to JPEG-LS.
Also times encode + decode of 100 slices (the shared series cycled) with ctlens on 2 threads, and, if
``benchmarks/bench_tokens.py`` exists, prints its ``token_table()``.

Usage:
    python benchmarks/bench_codec.py [--data ../shared/data] [--repeats 3] [--stream]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blosc2
import imagecodecs as ic
import numpy as np

import ctlens
from ctlens.codec import decode_volume, encode_volume
from ctlens.core.volume import Volume
from ctlens.io.dicom_headers import dicom_folders


def peers() -> dict[str, tuple[Callable, Callable]]:
    def blosc_enc(s: np.ndarray) -> bytes:
        return blosc2.compress2(s.tobytes(), typesize=2, clevel=5, codec=blosc2.Codec.ZSTD)

    return {
        "JPEG-LS": (ic.jpegls_encode, ic.jpegls_decode),
        "JPEG 2000": (lambda s: ic.jpeg2k_encode(s, level=0, reversible=True), ic.jpeg2k_decode),
        "HTJ2K": (lambda s: ic.htj2k_encode(s, reversible=True), ic.htj2k_decode),
        "PNG": (ic.png_encode, ic.png_decode),
        "blosc2-zstd": (blosc_enc, lambda b: np.frombuffer(blosc2.decompress2(b), np.uint16)),
    }


class Peer:
    """An imagecodecs codec run slice by slice on the shifted uint16 pixels (one thread)."""

    def __init__(self, u: np.ndarray, enc: Callable, dec: Callable) -> None:
        self.u, self.enc, self.dec, self.blobs = u, enc, dec, []

    def encode(self) -> None:
        self.blobs = [self.enc(s) for s in self.u]

    def decode(self) -> None:
        outs = [self.dec(b) for b in self.blobs]
        assert all(np.array_equal(np.asarray(o).reshape(s.shape), s) for o, s in zip(outs, self.u, strict=True))

    def size(self) -> int:
        return sum(len(b) for b in self.blobs)


class Ctlens:
    """ctlens encode_volume / decode_volume through real .ctz files, one file per series."""

    def __init__(self, vols: list[Volume], tmp: Path, profile: str, workers: int) -> None:
        self.vols, self.profile, self.workers = vols, profile, workers
        self.paths = [tmp / f"{profile}{workers}_{i}.ctz" for i in range(len(vols))]

    def encode(self) -> None:
        for v, p in zip(self.vols, self.paths, strict=True):
            encode_volume(v, p, profile=self.profile, workers=self.workers)

    def decode(self) -> None:
        for v, p in zip(self.vols, self.paths, strict=True):
            assert np.array_equal(decode_volume(p, workers=self.workers).array, v.array)

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


def interleaved(contestants: dict[str, Peer | Ctlens], repeats: int) -> dict[str, tuple[int, float, float]]:
    """Best encode and decode time of each contestant; rounds interleave contestants so load hits all alike."""
    best: dict[str, list[float]] = {name: [np.inf, np.inf] for name in contestants}
    for _ in range(repeats):
        for name, c in contestants.items():
            t0 = time.perf_counter()
            c.encode()
            t1 = time.perf_counter()
            c.decode()
            t2 = time.perf_counter()
            best[name] = [min(best[name][0], t1 - t0), min(best[name][1], t2 - t1)]
    return {name: (c.size(), *best[name]) for name, c in contestants.items()}


STREAM_CHILD = r"""
import json, sys, time

import numpy as np
from ctlens.codec import encode_slices, decode_slice
from ctlens.codec.synthetic import synthetic_slice, synthetic_slices
from ctlens.core.memory import peak_rss_mb

base = peak_rss_mb()
t0 = time.perf_counter()
stats = encode_slices(synthetic_slices(1000, 512), sys.argv[1], n_slices=1000, progress=True)
t = time.perf_counter() - t0
peak = peak_rss_mb()
assert np.array_equal(decode_slice(sys.argv[1], 999), synthetic_slice(999, 512))
print(json.dumps({"base_mb": base, "peak_mb": peak, "raw_mb": stats.raw_bytes / 1e6,
                  "ratio": stats.ratio, "seconds": t}))
"""


def stream_1000() -> str:
    """Encode 1,000 synthetic 512x512 slices from a generator in a child process; report its peak RSS."""
    import json
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", STREAM_CHILD, str(Path(tmp) / "big.ctz")], capture_output=True, text=True
        )
    if proc.returncode:
        return f"stream test failed: {proc.stderr[-1000:]}"
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return (
        f"streamed 1,000 slices of 512x512 ({r['raw_mb']:.0f} MB raw) in {r['seconds']:.1f} s, ratio {r['ratio']:.2f}:"
        f" peak RSS {r['peak_mb']:.0f} MB (before encoding {r['base_mb']:.0f} MB; goal < 2048 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream", action="store_true", help="also stream 1,000 synthetic 512x512 slices")
    args = parser.parse_args()
    vols = [ctlens.load(f, uneven="resample") for f in dicom_folders(args.data)]
    vols = [v for v in vols if v.array.dtype == np.int16]
    arr = np.concatenate([v.array for v in vols])
    print(
        f"{len(vols)} series, {arr.shape[0]} slices, {arr.nbytes / 1e6:.1f} MB int16; os.cpu_count()={os.cpu_count()}"
    )
    u = (arr.astype(np.int32) - int(arr.min())).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        contestants: dict[str, Peer | Ctlens] = {
            "ctlens compact": Ctlens(vols, Path(tmp), "compact", 1),
            "ctlens fast": Ctlens(vols, Path(tmp), "fast", 1),
            "ctlens compact 2t": Ctlens(vols, Path(tmp), "compact", 2),
            "ctlens fast 2t": Ctlens(vols, Path(tmp), "fast", 2),
        }
        contestants.update({name: Peer(u, enc, dec) for name, (enc, dec) in peers().items()})
        rows = interleaved(contestants, args.repeats)
        ref_size, ref_te, ref_td = rows["JPEG-LS"]
        mb = arr.nbytes / 1e6
        print(f"\n{'codec':16s} {'ratio':>6s} {'enc MB/s':>9s} {'dec MB/s':>9s}  | vs JPEG-LS: ratio  enc   dec")
        for name, (size, te, td) in rows.items():
            print(
                f"{name:16s} {arr.nbytes / size:6.3f} {mb / te:9.0f} {mb / td:9.0f}  |           "
                f"{ref_size / size:5.3f} {ref_te / te:5.2f} {ref_td / td:5.2f}"
            )
        # 100 slices, encode + decode, ctlens on 2 threads (workers=2), best of repeats
        idx = np.arange(100) % arr.shape[0]
        hundred = Volume(arr[np.sort(idx)])
        for profile in ("compact", "fast"):
            path = Path(tmp) / "h.ctz"
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                encode_volume(hundred, path, profile=profile, workers=2)
                decode_volume(path, workers=2)
                times.append(time.perf_counter() - t0)
            t = min(times)
            print(f"ctlens {profile}: encode + decode of 100 slices of 512x512 = {t:.2f} s (goal < 1 s)")
        roi_path = Path(tmp) / "roi.ctz"
        for v in vols[:1]:
            stats = encode_volume(v, roi_path, mode="roi", max_error=5)
            lossless = rows["ctlens compact"][0]
            print(
                f"ctlens roi (max error 5 HU) on first series: ratio {stats.ratio:.2f}, ROI {stats.roi_coverage:.0%}"
                f" (lossless all series: {arr.nbytes / lossless:.2f})"
            )
    if args.stream:
        print(stream_1000())
    tokens = Path(__file__).with_name("bench_tokens.py")
    if tokens.exists():
        spec = importlib.util.spec_from_file_location("bench_tokens", tokens)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        print()
        print(module.token_table())


if __name__ == "__main__":
    main()
