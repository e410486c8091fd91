"""Lossless CT compression: ctlens .ctz vs JPEG-LS, JPEG XL, JPEG 2000, HTJ2K, PNG and blosc2-zstd, per series.

Peers (imagecodecs, same process, same int16 pixels of every DICOM series, shifted by the series minimum to uint16
where the codec needs unsigned samples): JPEG-LS (CharLS), JPEG XL lossless (libjxl, effort 1, 3 and 7, default
16-bit depth, one thread), JPEG 2000 reversible (OpenJPEG), HTJ2K (OpenJPH), PNG (libpng), blosc2 zstd + shuffle.
ctlens encodes/decodes through its real files (container, checksums included) with 2 threads (``workers=2``).

Series: every DICOM series under ``--data`` (default ``../shared/data``) and every folder given with ``--extra``,
plus ``--synthetic N`` synthetic CT-like series (fresh random seeds each run, printed; smooth anatomy, correlated
noise, slice-to-slice change) as a sanity check that nothing is tuned to the shared files.

Prints, per series, each codec's ratio and its ratio relative to JPEG-LS and to JPEG XL effort 7 (> 1: smaller
file; ctlens sizes are whole .ctz files: slice streams plus about 1-5 KB of header with the de-identified DICOM
meta, index, statistics and footer, which the bare peer streams do not carry; the "streams only" row leaves that
out); then speed over all series (MB/s of int16; best of ``--repeats`` rounds, rounds interleave the codecs so
machine load hits all alike) and encode + decode of 100 slices of 512x512 with ctlens on 2 threads per profile
(interleaved, best of ``--repeats``). ``--sweep`` adds ctlens JPEG XL profiles at every effort 1-7 (the
ratio/time frontier). If ``benchmarks/bench_tokens.py`` exists, prints its ``token_table()``.

Usage:
    python benchmarks/bench_codec.py [--data ../shared/data] [--extra DIR ...] [--synthetic 2] [--repeats 3]
                                     [--sweep] [--stream] [--no-tokens]
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
from scipy import ndimage

import ctlens
from ctlens.codec import decode_volume, encode_volume
from ctlens.codec.container import CtzReader
from ctlens.core.volume import Volume
from ctlens.io.dicom_headers import dicom_folders

PROFILES = ("compact", "fast", "small", "smallest")
"""ctlens profiles in every run (``--sweep`` adds ``jxl e1`` .. ``jxl e7``: profile smallest at that effort)."""


def synthetic_series(seed: int, n: int = 40, size: int = 512) -> np.ndarray:
    """A CT-like int16 series: air, an elliptic body with fat rim, lungs, spine, smooth slice-to-slice change and
    spatially correlated noise (its level drawn per series), all from ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    noise_sd = rng.uniform(8, 40)
    out = np.empty((n, size, size), np.int16)
    a, b = rng.uniform(0.38, 0.46), rng.uniform(0.28, 0.36)
    for k in range(n):
        t = k / n
        body = (xx / a) ** 2 + (yy / b) ** 2 < 1
        fat = (xx / (a - 0.03)) ** 2 + (yy / (b - 0.03)) ** 2 >= 1
        lung_r = 0.12 + 0.05 * np.sin(np.pi * t)
        lungs = ((np.abs(xx) - 0.17) / lung_r) ** 2 + (yy / (lung_r * 1.4)) ** 2 < 1
        spine = (xx**2 + (yy - 0.2) ** 2) < (0.035 + 0.01 * np.cos(9 * t)) ** 2
        hu = np.where(body, np.where(fat, -90.0, 40.0), -1000.0)
        hu = np.where(lungs & body, -850.0, hu)
        hu = np.where(spine, 700.0, hu)
        hu = ndimage.gaussian_filter(hu, 1.2)
        noise = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 0.8)
        hu = hu + np.where(body, noise_sd, noise_sd / 4) * noise / noise.std()
        out[k] = np.clip(np.round(hu), -1024, 3071)
    return out


def peers() -> dict[str, tuple[Callable, Callable]]:
    def blosc_enc(s: np.ndarray) -> bytes:
        return blosc2.compress2(s.tobytes(), typesize=2, clevel=5, codec=blosc2.Codec.ZSTD)

    def jxl(effort: int) -> tuple[Callable, Callable]:
        return (
            lambda s: ic.jpegxl_encode(s, lossless=True, effort=effort, numthreads=1),
            lambda b: ic.jpegxl_decode(b, numthreads=1),
        )

    return {
        "JPEG-LS": (ic.jpegls_encode, ic.jpegls_decode),
        "JPEG XL e1": jxl(1),
        "JPEG XL e3": jxl(3),
        "JPEG XL e7": jxl(7),
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
    """ctlens encode_volume / decode_volume of one series through a real .ctz file."""

    def __init__(self, vol: Volume, path: Path, profile: str, workers: int = 2, effort: int | None = None) -> None:
        self.vol, self.path, self.profile, self.workers, self.effort = vol, path, profile, workers, effort

    def encode(self) -> None:
        encode_volume(self.vol, self.path, profile=self.profile, workers=self.workers, effort=self.effort)

    def decode(self) -> None:
        assert np.array_equal(decode_volume(self.path, workers=self.workers).array, self.vol.array)

    def size(self) -> int:
        return self.path.stat().st_size

    def stream_size(self) -> int:
        """Bytes of the coded slice streams alone (the file less header, index, statistics and footer)."""
        return sum(r.main_len + r.corr_len for r in CtzReader(self.path).records)


def ctlens_rows(sweep: bool) -> dict[str, tuple[str, int | None]]:
    """Contestant name -> (profile, JPEG XL effort override)."""
    rows: dict[str, tuple[str, int | None]] = {f"ctlens {p}": (p, None) for p in PROFILES}
    if sweep:
        rows.update({f"ctlens jxl e{e}": ("smallest", e) for e in range(1, 8)})
    return rows


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


def load_series(args: argparse.Namespace) -> list[tuple[str, Volume]]:
    """(label, int16 Volume) of every DICOM series found, then the synthetic ones."""
    out: list[tuple[str, Volume]] = []
    for root in [args.data, *args.extra]:
        for folder in dicom_folders(root):
            vol = ctlens.load(folder, uneven="resample")
            if vol.array.dtype == np.int16:
                label = str(Path(folder).relative_to(root)) if Path(folder) != Path(root) else Path(root).name
                out.append((label[-34:], vol))
    seeds = np.random.SeedSequence().generate_state(args.synthetic) if args.synthetic else []
    for seed in seeds:
        out.append((f"synthetic seed {int(seed)}", Volume(synthetic_series(int(seed)), spacing=(2.0, 0.7, 0.7))))
    return out


def series_table(
    series: list[tuple[str, Volume]], tmp: Path, sweep: bool, repeats: int
) -> dict[str, dict[str, tuple[int, float, float]]]:
    """Per series: codec -> (bytes, best encode s, best decode s); prints the ratio table as it goes."""
    results = {}
    names = list(ctlens_rows(sweep)) + list(peers())
    print(f"\n{'series':34s} " + " ".join(f"{n.replace('ctlens ', ''):>10s}" for n in names))
    for label, vol in series:
        arr = vol.array
        u = (arr.astype(np.int32) - int(arr.min())).astype(np.uint16)
        contestants: dict[str, Peer | Ctlens] = {
            name: Ctlens(vol, tmp / f"{i}.ctz", profile, 2, effort)
            for i, (name, (profile, effort)) in enumerate(ctlens_rows(sweep).items())
        }
        contestants.update({name: Peer(u, enc, dec) for name, (enc, dec) in peers().items()})
        rows = interleaved(contestants, repeats)
        results[label] = rows
        streams = {n: c.stream_size() if isinstance(c, Ctlens) else rows[n][0] for n, c in contestants.items()}
        jls, jxl7 = rows["JPEG-LS"][0], rows["JPEG XL e7"][0]
        print(f"{label:34s} " + " ".join(f"{arr.nbytes / rows[n][0]:10.3f}" for n in names) + "  ratio")
        print(f"{'  vs JPEG-LS':34s} " + " ".join(f"{jls / rows[n][0]:10.3f}" for n in names))
        print(f"{'  vs JPEG XL e7':34s} " + " ".join(f"{jxl7 / rows[n][0]:10.3f}" for n in names))
        print(
            f"{'  vs JPEG XL e7, streams only':34s} " + " ".join(f"{jxl7 / streams[n]:10.3f}" for n in names),
            flush=True,
        )
    return results


def speed_table(results: dict[str, dict[str, tuple[int, float, float]]], mb: float) -> None:
    """Encode / decode speed over all series (sum of each series' best times) and relative to JPEG-LS."""
    names = next(iter(results.values())).keys()
    total = {n: [sum(r[n][k] for r in results.values()) for k in range(3)] for n in names}
    ref_size, ref_te, ref_td = total["JPEG-LS"]
    print(f"\n{'all series':18s} {'enc MB/s':>9s} {'dec MB/s':>9s}  | vs JPEG-LS: size   enc   dec")
    for name, (size, te, td) in total.items():
        print(
            f"{name:18s} {mb / te:9.0f} {mb / td:9.0f}  |            "
            f"{ref_size / size:5.3f} {ref_te / te:5.2f} {ref_td / td:5.2f}"
        )


def hundred_slices(series: list[tuple[str, Volume]], tmp: Path, sweep: bool, repeats: int) -> None:
    """Encode + decode of 100 slices of 512x512 (the series in order, cycled) per ctlens profile, 2 threads."""
    stack = np.concatenate([v.array for _, v in series if v.array.shape[1:] == (512, 512)])
    hundred = Volume(stack[np.arange(100) % stack.shape[0]])
    rows = ctlens_rows(sweep)
    best = dict.fromkeys(rows, np.inf)
    sizes = {}
    for _ in range(repeats):
        for name, (profile, effort) in rows.items():
            c = Ctlens(hundred, tmp / "h.ctz", profile, 2, effort)
            t0 = time.perf_counter()
            c.encode()
            c.decode()
            best[name] = min(best[name], time.perf_counter() - t0)
            sizes[name] = c.size()
    print(f"\nencode + decode of 100 slices of 512x512, 2 threads (load average {os.getloadavg()[0]:.1f}):")
    for name in rows:
        print(f"{name:18s} {best[name]:6.2f} s  ratio {hundred.array.nbytes / sizes[name]:.3f}  (goal < 1 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more folders to search for DICOM series")
    parser.add_argument("--synthetic", type=int, default=2, help="synthetic series with fresh seeds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="also ctlens JPEG XL at efforts 1-7 (frontier)")
    parser.add_argument("--stream", action="store_true", help="also stream 1,000 synthetic 512x512 slices")
    parser.add_argument("--no-tokens", action="store_true", help="skip bench_tokens' table")
    args = parser.parse_args()
    series = load_series(args)
    mb = sum(v.array.nbytes for _, v in series) / 1e6
    print(
        f"{len(series)} series, {sum(v.shape[0] for _, v in series)} slices, {mb:.1f} MB int16; "
        f"os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = series_table(series, Path(tmp), args.sweep, args.repeats)
        speed_table(results, mb)
        hundred_slices(series, Path(tmp), args.sweep, args.repeats)
        roi_path = Path(tmp) / "roi.ctz"
        label, vol = series[0]
        stats = encode_volume(vol, roi_path, mode="roi", max_error=5)
        lossless = results[label]["ctlens compact"][0]
        print(
            f"\nctlens roi (max error 5 HU) on {label}: ratio {stats.ratio:.2f}, ROI {stats.roi_coverage:.0%}"
            f" (lossless compact: {vol.array.nbytes / lossless:.2f})"
        )
    if args.stream:
        print(stream_1000())
    tokens = Path(__file__).with_name("bench_tokens.py")
    if tokens.exists() and not args.no_tokens:
        spec = importlib.util.spec_from_file_location("bench_tokens", tokens)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        print()
        print(module.token_table())


if __name__ == "__main__":
    main()
