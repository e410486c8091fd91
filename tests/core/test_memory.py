"""ctlens.core.memory: the peak RSS of this process, not of the parent that forked it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from ctlens.core.memory import peak_rss_kb, peak_rss_mb


def test_peak_grows_when_memory_is_touched() -> None:
    before = peak_rss_mb()
    block = np.ones(64 * 1024 * 1024, np.uint8)  # 64 MiB, touched
    after = peak_rss_mb()
    assert block.sum() > 0
    assert after >= before
    assert after >= 64


def test_child_does_not_inherit_the_parents_peak() -> None:
    code = (
        "import subprocess, sys, numpy as np\n"
        "big = np.ones(400 * 1024 * 1024, np.uint8); big.sum()\n"
        "out = subprocess.run([sys.executable, '-c', 'from ctlens.core.memory import peak_rss_mb;"
        "print(peak_rss_mb())'], capture_output=True, text=True, check=True).stdout\n"
        "print(out.strip())\n"
    )
    child_peak = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert child_peak < 300, child_peak  # the parent peaked above 400 MiB


def test_kib_and_mib_agree() -> None:
    assert abs(peak_rss_kb() / 1024 - peak_rss_mb()) < 1
