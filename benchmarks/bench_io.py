"""Load DICOM series with ctlens, SimpleITK's ImageSeriesReader and dcm2niix; print times and ratios.

Series: every DICOM folder under ``--data`` (the shared data), every folder given on the command line, and
(``--synthetic``, on by default) uncompressed synthetic series of 141 and 300 slices written into a temporary
folder from a real shared slice (``benchmarks/synthetic_series.py``: its full header, own UIDs, positions and
pixels per slice); ``--j2k-slices N`` adds a JPEG 2000 lossless copy of an N-slice synthetic series (each plane
encoded by OpenJPEG through imagecodecs, reversible 5/3 wavelet), so the JPEG 2000 row is not the shared series alone.

Peers: SimpleITK ``ImageSeriesReader`` (GDCM, series file names from GDCM, its default threads), run in the same
process on the same files; dcm2niix (the PyPI package's binary) converting the folder to uncompressed NIfTI in a
temporary folder (its time includes starting the process and writing the file; "-" when not installed). The
readers take turns round by round (one warm-up each first), so a busy shared machine disturbs them alike; the
table gives the best of ``--repeats`` rounds (least disturbed) and, for ctlens and SimpleITK, the median too.

``--old-tree PATH`` adds an A/B of ``ctlens.load`` against another source tree on the same series, alternating
rounds between two worker processes (``benchmarks/bench_io_ab.py``); for a series that ctlens resamples by
default (uneven spacing) the A/B also runs with ``uneven="keep"``.

Usage:
    python benchmarks/bench_io.py [--data ../shared/data] [--repeats 7] [--no-synthetic] [--j2k-slices 120]
        [--old-tree DIR] [FOLDER ...]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import SimpleITK as sitk
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

import ctlens
from ctlens.io.dicom_headers import dicom_folders
from ctlens.io.dicom_parse import encapsulated_frame, parse_file
from ctlens.io.j2k_plugin import decode_plane

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io_ab import TreeWorker, ab_rounds, summary  # noqa: E402
from synthetic_series import write_series  # noqa: E402

SYNTHETIC_SLICES = (141, 300)
BUSY_NOTE = (
    "decode-only got fewer cores than it runs threads: other processes held the rest (nice does not help across "
    "sessions: Linux autogroup shares the CPU per session first), so the parallel readers are slowed, not SimpleITK"
)


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


def take_turns(
    readers: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each reader once per round, in turn (after one warm-up each): the seconds of every round, and the cores it got.

    Cores: this process's CPU time over the wall time of the round (every thread of the process counts), so a reader
    that runs several threads but gets about one core shows that other processes took the rest.
    """
    for read in readers.values():
        read()
    times: dict[str, list[float]] = {name: [] for name in readers}
    cores: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeats):
        for name, read in readers.items():
            cpu, start = time.process_time(), time.perf_counter()
            read()
            wall = time.perf_counter() - start
            times[name].append(wall)
            cores[name].append((time.process_time() - cpu) / wall if wall > 0 else 0.0)
    return times, cores


def synthetic_series(folders: list[Path], root: Path, slices: tuple[int, ...]) -> list[Path]:
    """Uncompressed series of ``slices`` slices each, made from the first uncompressed real slice found."""
    for folder in folders if slices else []:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not DICOM: try the next file
                continue
            if not ds.file_meta.TransferSyntaxUID.is_compressed and "ImagePositionPatient" in ds:
                made = []
                for n in slices:
                    write_series(path, root / f"synthetic_{n}", n)
                    made.append(root / f"synthetic_{n}")
                return made
    return []


def j2k_copy(folder: Path, out: Path) -> Path:
    """A JPEG 2000 lossless copy of the uncompressed series in ``folder`` (same headers, one codestream per file)."""
    import imagecodecs

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        ds = pydicom.dcmread(path)
        code = imagecodecs.jpeg2k_encode(ds.pixel_array, level=0, codecformat="J2K", reversible=True, numthreads=1)
        ds.PixelData = encapsulate([code])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.save_as(out / path.name, enforce_file_format=True)
    return out


def decode_only(files: list[Path], pool: ThreadPoolExecutor) -> Callable[[], object] | None:
    """A reader that only decodes every file's JPEG 2000 codestream (already in memory) on ``pool``: the ceiling."""
    planes = []
    for path in files:
        parsed = parse_file(path)
        if parsed is None or parsed.pixel_offset is None:
            return None
        facts = parsed.facts
        codestream = encapsulated_frame(path, parsed.pixel_offset)
        if codestream is None:
            return None
        signed, bits = facts["PixelRepresentation"] == 1, int(facts["BitsAllocated"] or 16)
        planes.append((codestream, int(facts["Rows"]), int(facts["Columns"]), signed, bits))
    return lambda: list(pool.map(lambda p: decode_plane(*p), planes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="more DICOM series folders")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CTLENS_DATA_DIR", "../shared/data")))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--j2k-slices", type=int, default=0, help="add a synthetic JPEG 2000 series of this many")
    parser.add_argument("--old-tree", type=Path, help="also A/B ctlens.load against this source tree")
    args = parser.parse_args()
    logging.getLogger("ctlens").setLevel(logging.ERROR)  # the readers' warnings (tilt, uneven) are not results
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    binary = dcm2niix_binary()
    print(
        f"cores: {os.cpu_count()}, SimpleITK {sitk.Version.VersionString()}, ctlens {ctlens.__version__}, "
        f"dcm2niix {'at ' + binary if binary else 'not installed'}"
    )
    shared = dicom_folders(args.data) if args.data.is_dir() else []
    with tempfile.TemporaryDirectory(prefix="bench-io-") as tmp:
        extra = [f for folder in args.folders for f in (dicom_folders(folder) or [folder])]
        folders = [*shared, *extra]
        made = synthetic_series(folders, Path(tmp), SYNTHETIC_SLICES if args.synthetic else ())
        if args.j2k_slices:
            plain = synthetic_series(folders, Path(tmp) / "j2k_source", (args.j2k_slices,))
            made += [j2k_copy(f, Path(tmp) / f"synthetic_j2k_{args.j2k_slices}") for f in plain]
        folders += made
        rows = table(folders, args, binary)
        if args.old_tree:
            ab_table(rows, args)


def table(folders: list[Path], args: argparse.Namespace, binary: str | None) -> list[tuple[Path, dict]]:
    print(
        f"{'series':<48} {'syntax':<22} {'n':>3} {'sitk best/med s':>16} {'ctlens best/med s':>17} "
        f"{'1 thread s':>10} {'dcm2niix s':>10} {'sitk/ctlens best':>16} {'med':>6} {'d2n/ctlens':>10}"
    )
    rows = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file())
        first = pydicom.dcmread(files[0], stop_before_pixels=True)
        syntax = first.file_meta.TransferSyntaxUID.name
        readers: dict[str, Callable[[], object]] = {
            "sitk": lambda f=folder: load_sitk(f),
            "ctlens": lambda f=folder: ctlens.load(f),
            "one": lambda f=folder: ctlens.load(f, workers=1),
        }
        if binary:
            readers["d2n"] = lambda f=folder: convert_dcm2niix(binary, f)
        pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
        ceiling = decode_only(files, pool) if "JPEG 2000" in syntax else None
        if ceiling is not None:  # in the same rounds as the readers, so the machine's load is the same
            readers["decode"] = ceiling
        times, cores = take_turns(readers, args.repeats)
        pool.shutdown()
        vol = ctlens.load(folder)
        best = {k: min(v) for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in times.items()}
        name = str(folder.relative_to(args.data)) if folder.is_relative_to(args.data) else folder.name
        d2n = f"{best['d2n']:>10.3f}" if "d2n" in best else f"{'-':>10}"
        d2n_ratio = f"{best['d2n'] / best['ctlens']:>9.2f}x" if "d2n" in best else f"{'-':>10}"
        print(
            f"{name[-48:]:<48} {syntax[:22]:<22} {len(files):>3} {summary(times['sitk']):>16} "
            f"{summary(times['ctlens']):>17} {best['one']:>10.3f} {d2n} {best['sitk'] / best['ctlens']:>15.2f}x "
            f"{med['sitk'] / med['ctlens']:>5.2f}x {d2n_ratio}"
        )
        rows.append((folder, {"resampled": bool(vol.meta.get("resampled_equidistant"))}))
        if "decode" in best:
            used = {k: statistics.median(cores[k]) for k in ("sitk", "ctlens", "decode")}
            print(
                f"{'':<48} JPEG 2000 ceiling: decoding the codestreams alone ({os.cpu_count()} threads, same rounds) "
                f"takes {best['decode']:.3f} s: SimpleITK / decode-only = {best['sitk'] / best['decode']:.2f}x, "
                f"ctlens / decode-only = {best['ctlens'] / best['decode']:.2f}x; cores got (CPU / wall, median): "
                f"SimpleITK {used['sitk']:.2f}, ctlens {used['ctlens']:.2f}, decode-only {used['decode']:.2f}"
            )
            if used["decode"] < 0.75 * (os.cpu_count() or 1):
                print(f"{'':<48} {BUSY_NOTE}")
    print(
        "ratio > 1: ctlens is faster. ctlens's time includes series discovery, sorting, tilt correction, resampling "
        "of uneven series and HU; dcm2niix's includes its process start and writing the NIfTI."
    )
    return rows


def ab_table(rows: list[tuple[Path, dict]], args: argparse.Namespace) -> None:
    """``ctlens.load`` of this tree (A) against ``--old-tree`` (B), rounds alternating, on every series."""
    new, old = TreeWorker(Path(__file__).resolve().parents[1]), TreeWorker(args.old_tree)
    print(f"\nA/B: A = {new.module}, B = {old.module} (alternating rounds)")
    print(
        f"{'series':<48} {'options':<14} {'A best / median s':>18} {'B best / median s':>18} {'B/A best':>9} {'med':>6}"
    )
    try:
        for folder, facts in rows:
            for options in [{}] + ([{"uneven": "keep"}] if facts["resampled"] else []):
                t_new, t_old, shape_new, shape_old = ab_rounds(new, old, folder, options, args.repeats)
                note = "" if shape_new == shape_old else f"  (shapes: A {shape_new}, B {shape_old})"
                label = ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"
                print(
                    f"{folder.name[-48:]:<48} {label:<14} {summary(t_new):>18} {summary(t_old):>18} "
                    f"{min(t_old) / min(t_new):>8.2f}x {statistics.median(t_old) / statistics.median(t_new):>5.2f}x"
                    f"{note}"
                )
    finally:
        new.close()
        old.close()
    print("B/A > 1: this tree is faster.")


if __name__ == "__main__":
    main()
