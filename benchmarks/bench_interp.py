"""Seconds and peak memory per slice-interpolation method on a 512x512 CT series x4, with named peers.

Input: the shared Lung-PET-CT-Dx B40f series (30 slices, 512x512), mirrored along z to ``--slices``
(default 76) slices, so x4 gives 301 output slices (the issue's goal: ``flow`` < 60 s for 300 output
slices on 2 cores). Peers in the same run, on the same array: SimpleITK B-spline resampling
(``sitk.ResampleImageFilter`` via ``ctlens.preprocess.resample(method="bspline")`` onto the same z
positions) and ``scipy.ndimage.zoom(order=3)`` along z. Each method runs in its own subprocess, so
peak memory (``VmHWM`` minus the RSS after loading) is its own. Threads: 2 (OpenCV, SimpleITK,
torch, BLAS).

Usage:
    python benchmarks/bench_interp.py [--data ../shared/data] [--slices 76] [--methods ...] [--smore-steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ctlens.core.memory import peak_rss_mb

os.environ.setdefault("OMP_NUM_THREADS", "2")

PEERS = ("sitk_bspline", "scipy_zoom_cubic")
OURS = ("nearest", "linear", "cubic", "flow", "self_supervised")


def _input(data: Path, slices: int):
    import numpy as np

    import ctlens

    vol = ctlens.load(data / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm")
    arr = vol.array
    order = list(range(arr.shape[0]))
    while len(order) < slices:
        order += order[-2::-1][: slices - len(order)]
    return vol.with_array(np.ascontiguousarray(arr[order[:slices]]))


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(method: str, data: Path, slices: int, smore_steps: int) -> dict:
    import numpy as np

    try:
        import cv2

        cv2.setNumThreads(2)
    except ImportError:
        pass
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    vol = _input(data, slices)
    if method == "self_supervised":
        import torch

        torch.set_num_threads(2)
    from ctlens.pipelines.interp.grid import output_grid
    from ctlens.pipelines.interp.interpolate import interpolate

    base = _rss_mb()
    start = time.perf_counter()
    if method == "sitk_bspline":
        from ctlens.preprocess.resample import resample

        grid = output_grid(vol, factor=4)
        out = resample(vol, grid.spacing, method="bspline", align="origin").array[: len(grid.positions)]
    elif method == "scipy_zoom_cubic":
        from scipy import ndimage

        zoom_z = (4 * (slices - 1) + 1) / slices  # first and last slice kept (grid_mode=False), as ctlens
        out = ndimage.zoom(vol.array.astype(np.float32), (zoom_z, 1, 1), order=3, grid_mode=False)
    else:
        options = {"steps": smore_steps, "profile": "slab"} if method == "self_supervised" else {}
        out = interpolate(vol, factor=4, method=method, progress=False, **options).array
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    return {"method": method, "seconds": seconds, "peak_extra_mb": peak - base, "out_slices": int(out.shape[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CTLENS_DATA_DIR", "../shared/data")))
    parser.add_argument("--slices", type=int, default=76)
    parser.add_argument("--methods", default=",".join(PEERS + OURS))
    parser.add_argument("--smore-steps", type=int, default=300)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.slices, args.smore_steps)))
        return
    print(f"cores: {os.cpu_count()}, input {args.slices} x 512 x 512 (B40f mirrored), x4")
    print(f"{'method':<18} {'out slices':>10} {'seconds':>9} {'peak extra MB':>14}")
    results = {}
    for method in args.methods.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            method,
            "--data",
            str(args.data),
            "--slices",
            str(args.slices),
            "--smore-steps",
            str(args.smore_steps),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{method:<18} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results[method] = r
        print(f"{method:<18} {r['out_slices']:>10} {r['seconds']:>9.2f} {r['peak_extra_mb']:>14.0f}")
    peer = results.get("sitk_bspline")
    if peer:
        for method in ("cubic", "flow", "self_supervised"):
            if method in results:
                print(f"{method} / SimpleITK B-spline time: {results[method]['seconds'] / peer['seconds']:.2f}x")
    if "flow" in results:
        verdict = "met" if results["flow"]["seconds"] < 60 else "missed"
        print(f"goal flow < 60 s for {results['flow']['out_slices']} output slices: {verdict}")


if __name__ == "__main__":
    main()
