"""Load every shared DICOM series with ctlens and with SimpleITK's ImageSeriesReader; print time ratios.

Peer: SimpleITK ``ImageSeriesReader`` (GDCM, series file names from GDCM), run in
the same process on the same files. Each reader runs ``--repeats`` times after one
warm-up; the best time counts (least disturbed by the machine).

Usage:
    python benchmarks/bench_io.py [--data ../shared/data] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
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
    print(f"cores: {os.cpu_count()}, SimpleITK {sitk.Version.VersionString()}, ctlens {ctlens.__version__}")
    header = f"{'series':<52} {'syntax':<24} {'n':>3} {'sitk s':>8} {'ctlens s':>9} {'1 thread':>9} {'sitk/ctlens':>11}"
    print(header)
    for folder in dicom_folders(args.data):
        first = pydicom.dcmread(next(p for p in sorted(folder.iterdir()) if p.is_file()), stop_before_pixels=True)
        syntax = first.file_meta.TransferSyntaxUID.name
        n = sum(1 for p in folder.iterdir() if p.is_file())
        t_sitk = best_time(lambda f=folder: load_sitk(f), args.repeats)
        t_ours = best_time(lambda f=folder: ctlens.load(f), args.repeats)
        t_one = best_time(lambda f=folder: ctlens.load(f, workers=1), args.repeats)
        name = str(folder.relative_to(args.data))
        print(
            f"{name:<52} {syntax[:24]:<24} {n:>3} {t_sitk:>8.3f} {t_ours:>9.3f} {t_one:>9.3f} {t_sitk / t_ours:>10.2f}x"
        )
    print("ratio > 1: ctlens is faster. ctlens's time includes series discovery, sorting, tilt correction and HU.")


if __name__ == "__main__":
    main()
