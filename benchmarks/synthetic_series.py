"""Write uncompressed synthetic CT series of any length from one real DICOM slice (for the reader benchmarks).

Every file is a copy of the template's full header (real vendor tags, private groups and all) with its own
SOPInstanceUID, InstanceNumber, ImagePositionPatient (a step of SliceThickness or 1 mm along the slice normal),
SliceLocation and pixel data (the template's pixels shifted by the slice index, so the planes differ).

Usage:
    python benchmarks/synthetic_series.py TEMPLATE.dcm OUT_FOLDER --slices 300

Example:
    >>> paths = write_series(Path("real_slice.dcm"), Path("synthetic_141"), 141)  # doctest: +SKIP
    >>> len(paths)  # doctest: +SKIP
    141
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def write_series(template: Path, out: Path, n_slices: int, syntax: str = ExplicitVRLittleEndian) -> list[Path]:
    """Write ``n_slices`` files of one series built from ``template`` into ``out``; return their paths."""
    src = pydicom.dcmread(template)
    if src.file_meta.TransferSyntaxUID.is_compressed:
        src.decompress()
    pixels = src.pixel_array
    iop = np.array([float(v) for v in src.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    step = float(src.get("SliceThickness") or 1.0) or 1.0
    origin = np.array([float(v) for v in src.ImagePositionPatient])
    series_uid, study_uid = generate_uid(), str(src.get("StudyInstanceUID", generate_uid()))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_slices):
        ds = copy.deepcopy(src)
        ds.file_meta.TransferSyntaxUID = syntax
        sop = generate_uid()
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        ds.InstanceNumber = k + 1
        pos = origin + k * step * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.SliceLocation = f"{float(pos @ normal):.6f}"
        plane = np.roll(pixels, k, axis=0).astype(pixels.dtype)
        ds.PixelData = plane.tobytes()
        path = out / f"IM{k:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--slices", type=int, default=141)
    args = parser.parse_args()
    write_series(args.template, args.out, args.slices)


if __name__ == "__main__":
    main()
