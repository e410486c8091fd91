"""A cache build killed with SIGKILL mid-way, then built again, ends complete with no corrupt entry.

The build runs in a real subprocess with the default process pool (two workers, so that several
entries are being written when the kill lands); the test polls ``processed/`` until some manifests
exist, sends SIGKILL to the build, checks that its pool workers die with it and that the cache is
really incomplete, builds again in this process and checks every entry against a fresh preparation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from synthetic_raw import make_raw

from ctlens.cache import CacheManager
from ctlens.cache.layout import TMP_PREFIX
from ctlens.cache.metadata import load_entry_volume
from ctlens.preprocess import prepare_for_inference

BUILD = """
import sys
from ctlens.cache import CacheManager
CacheManager(sys.argv[1]).build_cache(num_workers=2, executor="process", progress=False)
print("finished")
"""


def _manifests(processed: Path) -> int:
    return len([p for p in processed.glob("*/*.json") if not p.name.endswith(".failed.json")])


def test_sigkill_mid_build_then_rebuild_is_complete_and_correct(tmp_path: Path) -> None:
    root = make_raw(tmp_path, n_ct=10, shape=(160, 160, 40), bad=False)
    processed = root / "processed"
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while _manifests(processed) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the build ended before the kill: {out!r} {err[-2000:]!r}"
    assert workers, "the build ran no pool workers"
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"pool workers outlived the killed build: {alive}"

    cache = CacheManager(root)
    meta = cache.scan()
    states = [cache.status(e) for e in meta]
    assert 3 <= states.count("complete") < len(meta), states  # killed mid-way, for real

    report = cache.build_cache(num_workers=1, progress=False)
    assert not report.failed and report.built == len(meta) - states.count("complete")
    stats = cache.get_cache_stats()
    assert (stats.complete, stats.failed, stats.stale, stats.missing) == (len(meta), 0, 0, 0)
    left = [p for p in processed.rglob("*") if p.name.startswith(TMP_PREFIX) or p.name.endswith(".tmp")]
    assert not left, f"temporary files left: {left}"
    for entry in meta:
        assert cache.verify(entry.study, entry.image), f"{entry.name} is corrupt"
        arrays = cache.load_image(entry.study, entry.image)
        arrs, mask, _ = prepare_for_inference(load_entry_volume(root, entry), mode=entry.mode)
        np.testing.assert_array_equal(arrays["mask"], mask)
        for name, arr in arrs.items():
            np.testing.assert_array_equal(arrays[name], np.rint(arr * 255).astype(np.uint8), err_msg=entry.name)
    npy = {p.name for p in processed.rglob("*.npy")}
    assert npy == {rec["file"] for e in meta for rec in cache.manifest(e.study, e.image)["files"].values()}
