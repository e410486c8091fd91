"""Build a CT-RATE-style folder from a real CT: NIfTI of stored values without geometry + metadata, reports, labels.

Stored values are ``HU - intercept`` (slope 1, as CT-RATE's scanners write), the NIfTI affine is the identity (no
geometry, as distributed), and every geometric fact goes to the metadata CSV the way DICOM states it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np

from ctlens.core.volume import Volume

META_COLUMNS = (
    "VolumeName",
    "Manufacturer",
    "RescaleSlope",
    "RescaleIntercept",
    "XYSpacing",
    "ZSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "Rows",
    "Columns",
    "NumberofSlices",
)


def flipped(volume: Volume) -> Volume:
    """The same image stored the other way round: slices and rows reversed (column direction negative)."""
    nz, ny = volume.shape[:2]
    direction = volume.direction.copy()
    direction[:, 0] *= -1
    direction[:, 1] *= -1
    origin = tuple(volume.world((nz - 1, ny - 1, 0)))
    return Volume(volume.array[::-1, ::-1].copy(), volume.spacing, origin, direction, meta=dict(volume.meta))


def write_ct_rate_volume(volume: Volume, path: Path, axes: str = "yxz", intercept: int = -1024) -> dict[str, str]:
    """Write ``volume`` as a CT-RATE NIfTI (stored values, identity affine) and return its metadata row."""
    stored = (volume.array.astype(np.int32) - intercept).astype(np.int16)
    arr = stored.transpose(1, 2, 0) if axes == "yxz" else stored.transpose(2, 1, 0)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    d = np.asarray(volume.direction, float)
    row_dir, col_dir, slice_dir = d[:, 2], d[:, 1], d[:, 0]
    sign = 1.0 if float(np.dot(np.cross(row_dir, col_dir), slice_dir)) > 0 else -1.0
    fmt = lambda values: "[" + ", ".join(repr(float(x)) for x in values) + "]"  # noqa: E731
    return {
        "VolumeName": path.name,
        "Manufacturer": "SIEMENS",
        "RescaleSlope": "1",
        "RescaleIntercept": str(intercept),
        "XYSpacing": fmt(volume.spacing[1:]),
        "ZSpacing": repr(sign * float(volume.spacing[0])),
        "ImagePositionPatient": fmt(volume.origin),
        "ImageOrientationPatient": fmt([*row_dir, *col_dir]),
        "Rows": str(volume.shape[1]),
        "Columns": str(volume.shape[2]),
        "NumberofSlices": str(volume.shape[0]),
    }


def write_csv(path: Path, columns: list[str] | tuple[str, ...], rows: list[dict]) -> None:
    """A plain CSV with a header."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
