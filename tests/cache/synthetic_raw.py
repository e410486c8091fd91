"""A synthetic ``raw/`` data folder with good and bad studies (for the cache and data tests).

``make_raw(root)`` writes (all small, generated here):

* ``ct_00`` .. ``ct_NN``: NIfTI CTs (air, soft tissue, a bone ring; seeded noise so hashes differ);
* ``dicom_study``: two DICOM series nested two folders deep, plus a zip of a third series;
* ``mr_case.nii.gz``: a loose MR NIfTI directly in raw/ (a study of its own; no modality tag);
* bad studies: ``empty_study`` (empty folder), ``unreadable`` (garbage .nii.gz), ``one_slice``
  (a one-slice DICOM series), ``mixed`` (one SeriesInstanceUID holding two matrix sizes),
  ``flat`` (a NIfTI whose voxels are all equal).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dicom_factory as df
import nibabel as nib
import numpy as np

BAD_STUDIES = {
    "empty_study": "empty",
    "unreadable": "unreadable",
    "one_slice": "one slice",
    "mixed": "mixed series",
    "flat": "empty",
}


def synthetic_ct(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """An int16 HU array ``[x, y, z]`` (NIfTI order): air, an ellipse of tissue with a bone ring."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    x, y = np.mgrid[0:nx, 0:ny]
    r = ((x - nx / 2) / (0.4 * nx)) ** 2 + ((y - ny / 2) / (0.35 * ny)) ** 2
    plane = np.where(r < 1, 40, -1000).astype(np.int16)
    plane[(r > 0.8) & (r < 1)] = 1200
    vol = np.repeat(plane[:, :, None], nz, axis=2)
    return (vol + rng.integers(-20, 20, size=vol.shape)).astype(np.int16)


def write_nifti(path: Path, arr: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])), path)
    return path


def make_raw(root: Path, n_ct: int = 6, shape: tuple[int, int, int] = (64, 64, 16), bad: bool = True) -> Path:
    """Write a synthetic ``root/raw`` (module doc); return ``root``."""
    raw = root / "raw"
    raw.mkdir(parents=True)
    for i in range(n_ct):
        write_nifti(raw / f"ct_{i:02d}" / "scan.nii.gz", synthetic_ct(shape, seed=i))
    study = raw / "dicom_study"
    df.write_ct_series(study / "visit1" / "axial", n_slices=6, rows=32, cols=32, seed=1, description="A")
    df.write_ct_series(study / "visit1" / "axial", n_slices=5, rows=32, cols=32, seed=2, description="B")
    tmp_zip_src = root / "zip_src"
    df.write_ct_series(tmp_zip_src, n_slices=4, rows=32, cols=32, seed=3, description="zipped")
    df.make_zip(tmp_zip_src, study / "archive.zip")
    shutil.rmtree(tmp_zip_src)
    mr = np.zeros((48, 40, 12), np.float32)
    mr[8:40, 8:32] = np.random.default_rng(9).uniform(200, 900, size=(32, 24, 12))
    write_nifti(raw / "mr_case.nii.gz", mr, spacing=(1.0, 1.0, 3.0))
    if bad:
        (raw / "empty_study").mkdir()
        (raw / "unreadable").mkdir()
        (raw / "unreadable" / "scan.nii.gz").write_bytes(b"this is not an image" * 10)
        df.write_ct_series(raw / "one_slice", n_slices=1, rows=32, cols=32, seed=4)
        uid = "1.2.826.0.1.3680043.8.498.999"
        df.write_ct_series(raw / "mixed" / "a", n_slices=4, rows=32, cols=32, series_uid=uid, seed=5)
        df.write_ct_series(raw / "mixed" / "b", n_slices=4, rows=48, cols=48, series_uid=uid, seed=6)
        write_nifti(raw / "flat" / "scan.nii.gz", np.full((16, 16, 4), -1000, np.int16))
    return root
