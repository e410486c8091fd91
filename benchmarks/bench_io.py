"""Load every shared DICOM series with ctlens, SimpleITK's ImageSeriesReader and dcm2niix; print time ratios.

Peers: SimpleITK ``ImageSeriesReader`` (GDCM, series file names from GDCM), run in
the same process on the same files; dcm2niix (the PyPI package's binary) converting
the folder to uncompressed NIfTI in a temporary folder (its time includes starting
the process and writing the file; "-" when dcm2niix is not installed). Each reader
runs ``--repeats`` times after one warm-up; the best time counts (least disturbed by
the machine).

Usage:
    python benchmarks/bench_io.py [--data ../shared/data] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
import SimpleITK as sitk

import ctlens
from ctlens.io.dicom_headers import dicom_folders


def load_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    uid = reader.GetGDCMSeriesIDs(str(folder))[0]
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), uid))
    return reader.Execute()


def dcm2niix_binary() -> str | None:
    """The dcm2niix executable next to this Python (the PyPI package's), else on PATH."""
    beside = Path(sys.executable).with_name("dcm2niix")
    return str(beside) if beside.exists() else shutil.which("dcm2niix")


def convert_dcm2niix(binary: str, folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dcm2niix-") as out:
        command = [binary, "-z", "n", "-b", "n", "-o", out, str(folder)]
        subprocess.run(command, check=True, capture_output=True, timeout=600)


def best_time(func, repeats: int) -> float:
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CTLENS_DATA_DIR", "../shared/data")))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    binary = dcm2niix_binary()
    print(
        f"cores: {os.cpu_count()}, SimpleITK {sitk.Version.VersionString()}, ctlens {ctlens.__version__}, "
        f"dcm2niix {'at ' + binary if binary else 'not installed'}"
    )
    header = (
        f"{'series':<52} {'syntax':<24} {'n':>3} {'sitk s':>8} {'dcm2niix s':>10} {'ctlens s':>9} {'1 thread':>9} "
        f"{'sitk/ctlens':>11} {'d2n/ctlens':>10}"
    )
    print(header)
    for folder in dicom_folders(args.data):
        first = pydicom.dcmread(next(p for p in sorted(folder.iterdir()) if p.is_file()), stop_before_pixels=True)
        syntax = first.file_meta.TransferSyntaxUID.name
        n = sum(1 for p in folder.iterdir() if p.is_file())
        t_sitk = best_time(lambda f=folder: load_sitk(f), args.repeats)
        t_d2n = best_time(lambda f=folder: convert_dcm2niix(binary, f), args.repeats) if binary else None
        t_ours = best_time(lambda f=folder: ctlens.load(f), args.repeats)
        t_one = best_time(lambda f=folder: ctlens.load(f, workers=1), args.repeats)
        name = str(folder.relative_to(args.data))
        d2n = f"{t_d2n:>10.3f}" if t_d2n is not None else f"{'-':>10}"
        d2n_ratio = f"{t_d2n / t_ours:>9.2f}x" if t_d2n is not None else f"{'-':>10}"
        print(
            f"{name:<52} {syntax[:24]:<24} {n:>3} {t_sitk:>8.3f} {d2n} {t_ours:>9.3f} {t_one:>9.3f} "
            f"{t_sitk / t_ours:>10.2f}x {d2n_ratio}"
        )
    print(
        "ratio > 1: ctlens is faster. ctlens's time includes series discovery, sorting, tilt correction and HU; "
        "dcm2niix's includes its process start and writing the NIfTI."
    )


if __name__ == "__main__":
    main()
