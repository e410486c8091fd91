"""Finding the inputs below a folder: volume files (NIfTI / NRRD / MHA), zips, and folders of DICOM files.

One walk for every caller that takes "a folder of scans" (training, the evaluation harness, the HDF5 export, the
CLI): :func:`volume_files` lists the files whose names say they are volumes (:mod:`ctlens.io.suffixes`),
:func:`volume_inputs` puts the DICOM folders (:func:`ctlens.io.dicom_headers.dicom_folders`) before them.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "a").mkdir()
    >>> for name in ("a/ct.nii.gz", "a/notes.txt", "b.zip"):
    ...     _ = (root / name).write_bytes(b"x")
    >>> [p.relative_to(root).as_posix() for p in volume_files(root, zips=True)]
    ['a/ct.nii.gz', 'b.zip']
"""

from __future__ import annotations

import os
from pathlib import Path

from ctlens.io.suffixes import ZIP_SUFFIX, is_volume_file

__all__ = ["volume_files", "volume_inputs"]


def volume_files(root: str | os.PathLike[str], *, zips: bool = False) -> list[Path]:
    """Every NIfTI / NRRD / MetaImage file below ``root`` (and ``.zip`` archives with ``zips``), sorted.

    Example:
        >>> import tempfile
        >>> volume_files(tempfile.mkdtemp())
        []
    """
    found = []
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and (is_volume_file(path.name) or (zips and path.name.lower().endswith(ZIP_SUFFIX))):
            found.append(path)
    return found


def volume_inputs(root: str | os.PathLike[str]) -> list[Path]:
    """The inputs below ``root``, each loadable with :func:`ctlens.io.load`: DICOM folders first, then volume files.

    A DICOM folder is one that directly holds a readable DICOM file (its sub-folders are listed on their own).

    Example:
        >>> import tempfile
        >>> volume_inputs(tempfile.mkdtemp())
        []
    """
    from ctlens.io.dicom_headers import dicom_folders

    return [*dicom_folders(root), *volume_files(root)]
