"""A/B timing of ``ctlens.load`` from two source trees in one run: is this tree slower than another one?

Each tree runs in its own long-lived Python process (``PYTHONPATH=<tree>/src``, the same interpreter and
packages); the rounds alternate between the trees (A, B, A, B, ...) on the same series, so a busy shared machine
disturbs both alike. Per series and tree it prints the best and the median of the rounds, and B/A (> 1: A is
faster).

Usage:
    python benchmarks/bench_io_ab.py --old-tree /tmp/tree402 [--data ../shared/data] [--rounds 9] [FOLDER ...]
    python benchmarks/bench_io_ab.py --old-tree /tmp/tree402 --option uneven=keep ../shared/data/dcm_qa_ct_ge

Example:
    >>> _parse_options(["uneven=keep", "workers=1"])
    {'uneven': 'keep', 'workers': 1}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_WORKER = r"""
import json, logging, sys, time
logging.disable(logging.WARNING)
import ctlens
print(json.dumps({"ready": ctlens.__file__}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    start = time.perf_counter()
    vol = ctlens.load(job["path"], **job["options"])
    took = time.perf_counter() - start
    print(json.dumps({"seconds": took, "shape": list(vol.array.shape)}), flush=True)
"""


class TreeWorker:
    """One Python process loading with the ``ctlens`` of one source tree (None: the installed one)."""

    def __init__(self, tree: Path | None) -> None:
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = str(tree / "src")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.module = json.loads(self._line())["ready"]

    def _line(self) -> str:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"the worker for {self.module if hasattr(self, 'module') else 'a tree'} stopped")
        return line

    def load(self, path: Path, options: dict) -> tuple[float, list[int]]:
        """Seconds one ``ctlens.load(path, **options)`` took in this tree, and the shape it returned."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"path": str(path), "options": options}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self._line())
        return reply["seconds"], reply["shape"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _parse_options(items: list[str]) -> dict:
    options: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        options[key] = int(value) if value.isdigit() else value
    return options


def ab_rounds(
    a: TreeWorker, b: TreeWorker, path: Path, options: dict, rounds: int
) -> tuple[list[float], list[float], list[int], list[int]]:
    """Alternating timings (one warm-up each first): A's seconds, B's seconds, A's and B's output shapes."""
    _, shape_a = a.load(path, options)
    _, shape_b = b.load(path, options)
    times_a, times_b = [], []
    for k in range(rounds):
        first, second = (a, b) if k % 2 == 0 else (b, a)  # who goes first alternates too
        t_first, _ = first.load(path, options)
        t_second, _ = second.load(path, options)
        times_a.append(t_first if first is a else t_second)
        times_b.append(t_second if first is a else t_first)
    return times_a, times_b, shape_a, shape_b


def summary(times: list[float]) -> str:
    return f"{min(times):.4f} / {statistics.median(times):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="more DICOM folders to time")
    parser.add_argument("--old-tree", type=Path, required=True, help="the other source tree (holding src/ctlens)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CTLENS_DATA_DIR", "../shared/data")))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--option", action="append", default=[], help="a ctlens.load option, e.g. uneven=keep")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from ctlens.io.dicom_headers import dicom_folders

    folders = [*(dicom_folders(args.data) if args.data.is_dir() else []), *args.folders]
    options = _parse_options(args.option)
    new, old = TreeWorker(Path(__file__).resolve().parents[1]), TreeWorker(args.old_tree)
    print(f"A (this tree): {new.module}\nB (old tree):  {old.module}\noptions: {options or 'defaults'}")
    print(f"{'series':<52} {'A best / median s':>18} {'B best / median s':>18} {'B/A best':>9} {'B/A median':>10}")
    try:
        for folder in folders:
            t_new, t_old, shape_new, shape_old = ab_rounds(new, old, folder, options, args.rounds)
            note = "" if shape_new == shape_old else f"  (shapes differ: A {shape_new}, B {shape_old})"
            print(
                f"{str(folder)[-52:]:<52} {summary(t_new):>18} {summary(t_old):>18} "
                f"{min(t_old) / min(t_new):>8.2f}x {statistics.median(t_old) / statistics.median(t_new):>9.2f}x{note}"
            )
    finally:
        new.close()
        old.close()
    print("B/A > 1: this tree is faster. Rounds alternate A/B (who goes first alternates too); best and median.")


if __name__ == "__main__":
    main()
