"""A 1,000-slice synthetic series (256x256, streamed from a generator) compresses in bounded memory.

256x256 instead of 512x512 keeps the test within a few seconds; the memory bound is the same argument: the
encoder holds a few slices, so peak RSS grows by far less than the series' raw size (131 MB here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys

def peak_kb():
    # VmHWM: peak RSS of this process image (ru_maxrss would include the parent's RSS inherited at fork)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

import numpy as np
from ctlens.codec import encode_slices, decode_slice

def one(k, size=256):
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.45 * size) ** 2)
    noise = np.random.default_rng(k).integers(-25, 26, (size, size))
    return np.where(body, 40 + np.round(20 * np.sin(k / 9 + xx / 17)) + noise, -1000).astype(np.int16)

def slices(n, size):
    for k in range(n):
        yield one(k, size)

import ctlens.codec.series  # imports done before the baseline
base = peak_kb()
stats = encode_slices(slices(1000, 256), sys.argv[1], n_slices=1000, progress=True)
peak = peak_kb()
ok = bool(np.array_equal(decode_slice(sys.argv[1], 777), one(777)))
print(json.dumps({"base_kb": base, "peak_kb": peak, "n": stats.n_slices, "raw": stats.raw_bytes, "ok": ok}))
"""


def test_1000_slices_stream_in_bounded_memory(tmp_path: Path) -> None:
    out = tmp_path / "big.ctz"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n"] == 1000 and result["ok"]
    growth = (result["peak_kb"] - result["base_kb"]) * 1024
    assert growth < result["raw"] / 4, f"RSS grew by {growth / 1e6:.0f} MB for {result['raw'] / 1e6:.0f} MB raw"
    assert result["peak_kb"] * 1024 < 2 * 1024**3
