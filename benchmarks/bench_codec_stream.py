"""Peak memory of ``ctlens compress`` on a DICOM folder: streamed slice by slice vs loaded whole (the peer).

Writes a synthetic single-frame CT series (``--slices`` files of ``--size`` x ``--size``, PHI-laden headers, from
``tests/io/dicom_factory.py``), then runs ``ctlens compress`` once per path, each in a fresh subprocess, and reads
that process's peak RSS (``VmHWM``, :func:`ctlens.core.memory.peak_rss_kb`) before and after the command. Peer: the
in-memory path (``--in-memory``: ``ctlens.load`` then ``encode_volume``) in the same run on the same files. Prints
peak RSS, growth over the imported baseline, wall time and the in-memory/stream ratios, and checks that both
``.ctz`` files are identical before the trailer (whose statistics hold the encode time) and decode identically.

Usage:
    python benchmarks/bench_codec_stream.py [--slices 400] [--size 512] [--mode lossless] [--keep DIR] [--no-peer]

The series is written 200 slices per factory call (one series: shared UIDs, consecutive positions), because the
factory builds each call's pixels in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 200
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "io")]

CHILD = r"""
import json, sys, time
from ctlens.core.memory import peak_rss_kb
from ctlens.cli.main import app
import ctlens.codec.series, ctlens.io.dicom_stream, ctlens.io.dicom_reader, rich.progress  # baseline: imports done
base = peak_rss_kb()
start = time.perf_counter()
try:
    app(["compress", *sys.argv[1:]], standalone_mode=False)
except SystemExit as exc:
    if exc.code:
        raise
print(json.dumps({"base_kb": base, "peak_kb": peak_rss_kb(), "seconds": time.perf_counter() - start}))
"""


def run_child(args: list[str]) -> dict:
    env = dict(os.environ, TERM="dumb")
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"compress failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_ctz(a: Path, b: Path) -> bool:
    from ctlens.codec.container import FOOTER
    from ctlens.codec.series import decode_volume

    da, db = a.read_bytes(), b.read_bytes()
    ta, tb = FOOTER.unpack(da[-FOOTER.size :])[4], FOOTER.unpack(db[-FOOTER.size :])[4]
    return ta == tb and da[:ta] == db[:tb] and np.array_equal(decode_volume(a).array, decode_volume(b).array)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mode", default="lossless", choices=["lossless", "roi"])
    parser.add_argument("--keep", type=Path, default=None, help="write (or reuse) the series here")
    parser.add_argument("--no-peer", action="store_true", help="stream only (for series too large to hold)")
    args = parser.parse_args()
    from dicom_factory import write_ct_series

    tmp = tempfile.TemporaryDirectory(prefix="bench-codec-stream-")
    root = args.keep or Path(tmp.name)
    series = root / f"ct_{args.slices}x{args.size}"
    if not series.is_dir():
        start = time.perf_counter()
        uids = {f"{k}_uid": f"1.2.826.0.1.3680043.8.498.{i}" for i, k in enumerate(("series", "study", "frame"), 1)}
        for c, first in enumerate(range(0, args.slices, CHUNK)):
            write_ct_series(
                series,
                n_slices=min(CHUNK, args.slices - first),
                rows=args.size,
                cols=args.size,
                spacing=(1.0, 0.7, 0.7),
                origin=(-10.0, -20.0, 30.0 + first),
                name_prefix=f"C{c:03d}_",
                seed=c,
                verify=False,
                **uids,
            )
        print(f"wrote {args.slices} files of {args.size}x{args.size} in {time.perf_counter() - start:.1f} s")
    raw_mb = args.slices * args.size * args.size * 2 / 2**20
    print(f"cores: {os.cpu_count()}, series: {args.slices} x {args.size} x {args.size} int16 = {raw_mb:.0f} MiB raw")
    results = {}
    paths = [("stream", [])] + ([] if args.no_peer else [("in-memory", ["--in-memory"])])
    for name, extra in paths:
        out = root / f"{name}.ctz"
        results[name] = run_child([str(series), str(out), "--mode", args.mode, *extra])
        results[name]["out"] = out
    print(f"{'path':<10} {'peak RSS MiB':>13} {'growth MiB':>11} {'seconds':>8}")
    for name, r in results.items():
        growth = (r["peak_kb"] - r["base_kb"]) / 1024
        print(f"{name:<10} {r['peak_kb'] / 1024:>13.0f} {growth:>11.0f} {r['seconds']:>8.2f}")
    if args.no_peer:
        tmp.cleanup()
        return
    s, m = results["stream"], results["in-memory"]
    print(
        f"in-memory / stream: peak RSS {m['peak_kb'] / s['peak_kb']:.2f}x, "
        f"growth {(m['peak_kb'] - m['base_kb']) / max(1, s['peak_kb'] - s['base_kb']):.1f}x, "
        f"time {m['seconds'] / s['seconds']:.2f}x"
    )
    print(f"identical .ctz before the trailer and decode-identical: {same_ctz(s['out'], m['out'])}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
