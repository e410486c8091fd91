"""`load` and `save`: the public entry points that pick the reader/writer by input type.

DICOM (folder searched recursively, zip, single file with or without ``.dcm``,
or a list of files), NIfTI (``.nii``, ``.nii.gz``), NRRD/MetaImage (``.nrrd``,
``.nhdr``, ``.mha``, ``.mhd``) and 2-D images (PNG, JPEG, BMP, TIFF) as a
one-slice volume. A ``dicomweb+http(s)://host:port/dicom-web`` address with ``study=`` retrieves the series
from that DICOMweb server into a private temporary folder, reads it like a folder, and deletes the folder.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from ctlens.core.volume import Volume
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "v.nii.gz"
    >>> save(Volume(np.arange(8, dtype=np.int16).reshape(2, 2, 2)), out)
    >>> load(out).array.ravel().tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ctlens.core.errors import InputNotFoundError, SeriesSelectionError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io.dicom_source import PathInput

__all__ = ["DICOMWEB_SCHEMES", "file_kind", "load", "load_volumes", "save"]
from ctlens.io.suffixes import IMAGE2D_SUFFIXES, ITK_SUFFIXES, NIFTI_SUFFIXES

DICOMWEB_SCHEMES = ("dicomweb+http://", "dicomweb+https://")
_CONTAINER_SUFFIXES = (".ctz",)  # the codec layer's own container (io may not import codec: DESIGN.md's layers)


def file_kind(path: str | os.PathLike) -> str:
    """'nifti', 'itk', 'image2d' or 'dicom' (folders, zips, anything else) from the name (io.suffixes' lists)."""
    name = str(path).lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(tuple(ITK_SUFFIXES)):
        return "itk"
    if name.endswith(tuple(IMAGE2D_SUFFIXES)):
        return "image2d"
    return "dicom"


def load(path: PathInput, series: int | str | None = None, *, study: str | None = None, **options: Any) -> Volume:
    """Load any supported image into a :class:`Volume` (HU for CT).

    ``series`` picks one DICOM series (index, SeriesInstanceUID or key, description
    text, kernel, or a part such as ``"acq 2"`` of a series holding several acquisitions);
    other keyword options go to :func:`ctlens.io.dicom_reader.read_dicom` (``tilt=``,
    ``uneven=``: ``"resample"`` by default, ``"keep"`` or ``"error"``; ``workers=``;
    ``volume=k``: volume ``k``, 0-based, of a series holding several time points or
    diffusion directions, see :func:`load_volumes` for all of them; also for a 4-D NIfTI file).
    ``study`` (a StudyInstanceUID) goes with a ``dicomweb+http(s)://`` address: a series UID retrieves that series,
    otherwise the whole study is retrieved and ``series`` picks as for a folder.
    """
    if isinstance(path, str) and path.lower().startswith(DICOMWEB_SCHEMES):
        return _load_dicomweb(path, study, series, **options)
    if study is not None:
        raise SeriesSelectionError(
            "study= selects a study on a DICOMweb server only", path=str(path), hint="leave study= out for files"
        )
    if isinstance(path, str | os.PathLike):
        kind = file_kind(path)
        if kind != "dicom" and not Path(path).exists():
            raise InputNotFoundError("no such file", path=path)
        if str(path).lower().endswith(_CONTAINER_SUFFIXES) and Path(path).is_file():
            raise UnsupportedFormatError(
                "a ctlens .ctz container, not an image file: ctlens.io.load reads images",
                path=path,
                hint="decode it with ctlens.codec.decode_volume(path) or `ctlens decompress` it to .nii.gz",
            )
        if kind == "nifti":
            from ctlens.io.nifti import read_nifti

            return read_nifti(path, volume=options.get("volume"))
        if kind == "itk":
            from ctlens.io.itk_image import read_itk_image

            return read_itk_image(path)
        if kind == "image2d":
            from ctlens.io.image2d_reader import read_image2d

            return read_image2d(path)
    from ctlens.io.dicom_reader import read_dicom

    return read_dicom(path, series=series, **options)


def load_volumes(path: PathInput, series: int | str | None = None, **options: Any) -> list[Volume]:
    """Every volume of a 4-D series (time points, diffusion directions), in acquisition order, as a list.

    A DICOM series or 4-D NIfTI file (:func:`ctlens.io.nifti.read_nifti_volumes`, read once) gives all its volumes;
    one holding one volume, and any other file, gives a list of one. Each volume equals
    ``load(path, series=series, volume=k)``; ``meta["n_volumes"]`` and ``meta["volume_index"]`` say which it is,
    and diffusion series carry ``meta["bvals"]`` / ``meta["bvecs"]`` (LPS) for all volumes (for NIfTI: from the
    FSL ``.bval`` / ``.bvec`` files beside it).

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "v.nii.gz"
        >>> save(Volume(np.zeros((2, 2, 2), np.int16)), out)
        >>> [v.shape for v in load_volumes(out)]
        [(2, 2, 2)]
    """
    if isinstance(path, str | os.PathLike) and not str(path).lower().startswith(DICOMWEB_SCHEMES):
        kind = file_kind(path)
        if kind == "nifti" and Path(path).exists():
            from ctlens.io.nifti import read_nifti_volumes

            return read_nifti_volumes(path)
        if kind != "dicom":
            return [load(path, series, **options)]
    if isinstance(path, str) and path.lower().startswith(DICOMWEB_SCHEMES):
        raise SeriesSelectionError(
            "load_volumes reads files; retrieve a DICOMweb series with ctlens.io.pull_series first",
            hint="pull the series into a folder, then load_volumes(folder)",
        )
    from ctlens.io.dicom_reader import read_dicom_volumes

    return read_dicom_volumes(path, series=series, **options)


def _load_dicomweb(address: str, study: str | None, series: int | str | None, **options: Any) -> Volume:
    """Retrieve from a DICOMweb server into a private temporary folder, read it, and delete the folder."""
    import tempfile

    from ctlens.io.dicom_reader import read_dicom
    from ctlens.io.dicomweb import is_uid, pull_series

    if not study:  # the address is not echoed: it may hold credentials
        raise SeriesSelectionError("a DICOMweb address needs study=<StudyInstanceUID>", hint="add study=...")
    with tempfile.TemporaryDirectory(prefix="ctlens-dicomweb-") as folder:
        pull_series(address, study, series if is_uid(series) else None, folder)
        return read_dicom(folder, series=series, **options)


def save(volume: Volume, path: str | os.PathLike) -> None:
    """Write a Volume as NIfTI (``.nii``/``.nii.gz``) or NRRD/MetaImage (``.nrrd``/``.mha``/``.mhd``).

    Writes atomically: a failed save leaves no partial file.
    """
    kind = file_kind(path)
    if kind == "nifti":
        from ctlens.io.nifti import write_nifti

        write_nifti(volume, path)
    elif kind == "itk":
        from ctlens.io.itk_image import write_itk_image

        write_itk_image(volume, path)
    else:
        raise UnsupportedFormatError(
            "cannot write this format", path=path, hint="use .nii.gz, .nii, .nrrd, .mha or .mhd"
        )
