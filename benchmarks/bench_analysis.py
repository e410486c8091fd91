"""Time and peak memory of `ctlens.analysis.analyze` on a 512x512x300 chest CT, against a named peer.

Volume: the real Lung_Dx-A0002 B70f chest CT (30 slices of 8 mm) resampled along z (linear interpolation)
to 300 slices of 0.8 mm, i.e. a 512x512x300 int16 series like a thin-slice chest CT.

Peer ("sitk+skimage baseline"): the common plain pipeline without trained weights, at full resolution:
SimpleITK Otsu threshold + connected components + hole filling for the lungs, then scikit-image
``blob_log`` (Laplacian of Gaussian) on the lung-masked slices every 8 mm for nodule blobs.
Both run in this process on the same array; peak memory is tracemalloc's peak of numpy allocations.
Peak RSS of one ``analyze`` call: the kernel's high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``, Linux) minus the RSS before the call, plus the int16 volume itself; issue #13's
bound is 4x the volume.

Before / after (``--old-tree PATH``): ``PATH/src`` is another ctlens tree, e.g. made with
``git archive 402dc30 src | tar -x -C /tmp/tree402``. The same volume (built once, passed as an ``.npz``) is
analysed by each tree in its own subprocess, alternately (old, new, old, new, ...; ``--rounds``), each process
timing ``--repeats`` calls after one warm-up; the best wall and CPU (``time.process_time``) seconds of each tree
and their ratio new / old are printed. CPU seconds are the steadier figure on a shared machine.

Usage:
    python benchmarks/bench_analysis.py [--data ../shared/data] [--slices 300] [--repeats 2]
    python benchmarks/bench_analysis.py --old-tree /tmp/tree402 [--rounds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.feature import blob_log

import ctlens
from ctlens.analysis import analyze


def thin_chest(data: Path, slices: int) -> ctlens.Volume:
    vol = ctlens.load(data / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B70f_8mm")
    zoom = (slices / vol.shape[0], 1.0, 1.0)
    arr = ndimage.zoom(vol.array.astype(np.float32), zoom, order=1).round().astype(np.int16)
    spacing = (vol.spacing[0] * vol.shape[0] / arr.shape[0], *vol.spacing[1:])
    return vol.with_array(arr, spacing=spacing)


def peer(vol: ctlens.Volume) -> int:
    img = sitk.GetImageFromArray(vol.array)
    img.SetSpacing(vol.itk_geometry()[0])
    body = sitk.OtsuThreshold(img, 0, 1)  # 1 = above the threshold (body), 0 = air and lung
    body = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(body, [3, 3, 1]))
    air = sitk.And(body, sitk.BinaryThreshold(img, -2000, -400, 1, 0))
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(air), minimumObjectSize=10000)
    lungs = sitk.GetArrayFromImage(cc) > 0
    lungs = ndimage.binary_fill_holes(lungs, np.array([np.zeros((3, 3)), np.ones((3, 3)), np.zeros((3, 3))], bool))
    step = max(1, int(round(8.0 / vol.spacing[0])))
    blobs = 0
    for z in range(0, vol.shape[0], step):
        if not lungs[z].any():
            continue
        soft = np.where(lungs[z], np.clip((vol.array[z] + 1000.0) / 1000.0, 0, 1), 0.0)[::2, ::2]
        blobs += len(blob_log(soft, min_sigma=2, max_sigma=12, num_sigma=6, threshold=0.2))
    return blobs


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mib(func) -> float | None:
    """Peak RSS growth (MiB) while ``func`` runs; ``None`` where ``/proc/self/clear_refs`` is not available."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _status_mib("VmRSS")
    func()
    return _status_mib("VmHWM") - before


def measure(func, repeats: int) -> tuple[float, float]:
    best, peak = float("inf"), 0.0
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return best, peak


def _child(npz: Path, repeats: int) -> None:
    """Time ``analyze`` of the volume in ``npz`` with whichever ctlens this process imports; print JSON."""
    with np.load(npz) as d:
        vol = ctlens.Volume(
            d["array"], spacing=tuple(d["spacing"]), origin=tuple(d["origin"]), direction=d["direction"], modality="CT"
        )
        vol.meta["kernel"] = str(d["kernel"])
    analyze(vol)  # warm-up: imports, caches
    walls, cpus, stages = [], [], {}
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        f = analyze(vol)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        for k, v in f.timings.items():
            stages[k] = min(stages.get(k, float("inf")), float(v))
    print(json.dumps({"wall": min(walls), "cpu": min(cpus), "stages": stages, "ctlens": str(Path(ctlens.__file__))}))


def compare_trees(vol: ctlens.Volume, old_tree: Path, rounds: int, repeats: int) -> None:
    """Old tree vs this one, alternately in subprocesses on the same volume (module docs)."""
    here = Path(__file__).resolve()
    new_src = here.parents[1] / "src"
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "volume.npz"
        kernel = str((vol.meta or {}).get("kernel") or "")
        np.savez(npz, array=vol.array, spacing=vol.spacing, origin=vol.origin, direction=vol.direction, kernel=kernel)
        for r in range(rounds):
            for name, src in (("old", old_tree / "src"), ("new", new_src)):
                env = {**os.environ, "PYTHONPATH": str(src)}
                cmd = [sys.executable, str(here), "--child-npz", str(npz), "--repeats", str(repeats)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
                got = json.loads(out.strip().splitlines()[-1])
                print(f"round {r + 1} {name}: wall {got['wall']:.2f} s, cpu {got['cpu']:.2f} s ({got['ctlens']})")
                prev = best.get(name)
                best[name] = {
                    "wall": min(got["wall"], prev["wall"]) if prev else got["wall"],
                    "cpu": min(got["cpu"], prev["cpu"]) if prev else got["cpu"],
                    "stages": {k: min(v, (prev or {}).get("stages", {}).get(k, v)) for k, v in got["stages"].items()},
                }
    print(f"{'stage (best s)':<16} {'old':>7} {'new':>7}")
    for k in sorted(set(best["old"]["stages"]) | set(best["new"]["stages"])):
        o, n = best["old"]["stages"].get(k), best["new"]["stages"].get(k)
        print(f"{k:<16} {'-' if o is None else f'{o:.2f}':>7} {'-' if n is None else f'{n:.2f}':>7}")
    for key in ("wall", "cpu"):
        o, n = best["old"][key], best["new"][key]
        print(f"analyze {key}: old {o:.2f} s, new {n:.2f} s, new / old {n / o:.2f}x (#15: <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CTLENS_DATA_DIR", "../shared/data")))
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--old-tree", type=Path, help="another ctlens tree (PATH/src): before / after, see the docs")
    parser.add_argument("--rounds", type=int, default=3, help="alternating old/new rounds with --old-tree")
    parser.add_argument("--child-npz", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_npz:
        _child(args.child_npz, args.repeats)
        return
    vol = thin_chest(args.data, args.slices)
    if args.old_tree:
        compare_trees(vol, args.old_tree, args.rounds, args.repeats)
        return
    print(f"cores: {os.cpu_count()}, volume {vol.shape} int16, spacing {tuple(round(s, 3) for s in vol.spacing)} mm")
    findings = analyze(vol)
    print(f"ctlens: region {findings.region}, {len(findings.candidates)} candidates, stages {findings.timings}")
    grow = peak_rss_mib(lambda: analyze(vol))
    if grow is not None:
        vol_mib = vol.array.nbytes / 2**20
        print(
            f"peak RSS of analyze: volume {vol_mib:.0f} MiB + {grow:.0f} MiB = {(vol_mib + grow) / vol_mib:.2f}x "
            f"the int16 volume (goal <= 4x)"
        )
    t_ours, m_ours = measure(lambda: analyze(vol), args.repeats)
    t_peer, m_peer = measure(lambda: peer(vol), args.repeats)
    print(f"{'method':<34} {'time s':>8} {'peak MiB':>9}")
    print(f"{'ctlens.analysis.analyze':<34} {t_ours:>8.2f} {m_ours:>9.0f}")
    print(f"{'sitk Otsu lungs + skimage blob_log':<34} {t_peer:>8.2f} {m_peer:>9.0f}")
    print(
        f"peer / ctlens time: {t_peer / t_ours:.2f}x (> 1: ctlens faster); goal: ctlens < 10 s -> "
        f"{'met' if t_ours < 10 else 'missed'}"
    )


if __name__ == "__main__":
    main()
