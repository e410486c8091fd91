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
import json, sys

import numpy as np
from ctlens.codec import encode_slices, decode_slice
from ctlens.codec.synthetic import synthetic_slice, synthetic_slices
from ctlens.core.memory import peak_rss_kb

import ctlens.codec.series  # imports done before the baseline
base = peak_rss_kb()
stats = encode_slices(synthetic_slices(1000, 256), sys.argv[1], n_slices=1000, progress=True)
peak = peak_rss_kb()
ok = bool(np.array_equal(decode_slice(sys.argv[1], 777), synthetic_slice(777, 256)))
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
