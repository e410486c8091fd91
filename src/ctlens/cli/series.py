"""``--series``: the one option every ``ctlens`` command that reads a study takes, and the one way it is used.

The text goes unchanged to the reader's series selection (:func:`ctlens.io.dicom_series.select_series`): a
SeriesInstanceUID (or the key ``ctlens info`` shows), an index as ``ctlens info`` numbers the series, part of the
series description, the reconstruction kernel, or a part's label (``"acq 2"``), in that order; a string of digits
is an index when there is a series with that number, otherwise it is matched as text. A series holding several
acquisitions (echoes, time points) at the same positions is listed once per part; without ``--series`` the largest
(first) part is read and a warning names the others. Commands with ``--series``: ``info``, ``convert``,
``analyze``, ``payload``, ``prepare``, ``compress``, ``interpolate`` and ``clip zero-shot``.

A file that holds a single volume (NIfTI, NRRD/MHA, a 2-D image) has no series to pick: ``--series`` with one
is an error rather than silently ignored.

``--volume`` (:data:`VolumeOption`) picks one volume (0-based) of a series holding several time points or
diffusion directions (``ctlens info`` shows how many); without it volume 0 is read and a warning says so, except
that ``ctlens convert`` to NIfTI writes every volume as one 4-D file (with FSL ``.bval``/``.bvec`` for diffusion),
as dcm2niix does.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from ctlens.core.volume import Volume
    >>> from ctlens.io import save
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.nii.gz"
    >>> save(Volume(np.zeros((2, 3, 3), np.int16)), path)
    >>> load_study(path, None).shape
    (2, 3, 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ctlens.core.volume import Volume

__all__ = ["SERIES_HELP", "VOLUME_HELP", "SeriesOption", "VolumeOption", "check_series_input", "load_study"]

SERIES_HELP = (
    "DICOM series to read: SeriesInstanceUID or key, index as `ctlens info` numbers them, part of the description, "
    "the kernel, or a part such as 'acq 2' (default: the largest axial CT series)"
)

SeriesOption = Annotated[str | None, typer.Option("--series", "-s", help=SERIES_HELP)]
"""The ``--series`` / ``-s`` option, the same on every command."""

VOLUME_HELP = (
    "volume (0-based) of a DICOM series holding several time points or diffusion directions "
    "(default: 0, with a warning; `convert` to NIfTI writes every volume as one 4-D file, "
    "with .bval/.bvec for diffusion)"
)

VolumeOption = Annotated[int | None, typer.Option("--volume", min=0, help=VOLUME_HELP)]
"""The ``--volume`` option: one volume of a 4-D series (``ctlens.load(..., volume=k)``)."""


def check_series_input(path: Path, series: str | None) -> None:
    """Refuse ``--series`` for an input that holds one volume (module doc).

    Example:
        >>> check_series_input(Path("scan.nii.gz"), None)
        >>> check_series_input(Path("dicom_folder"), "1")
        >>> check_series_input(Path("scan.nii.gz"), "1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.core.errors.SeriesSelectionError: scan.nii.gz: --series picks one ... (leave --series out)
    """
    from ctlens.core.errors import SeriesSelectionError
    from ctlens.io.loader import file_kind

    if series is not None and file_kind(path) != "dicom":
        raise SeriesSelectionError(
            f"--series picks one of the DICOM series in a folder or zip; a {file_kind(path)} file holds one volume",
            path=path,
            hint="leave --series out",
        )


def load_study(path: Path, series: str | None, **dicom_options: Any) -> Volume:
    """Load ``path`` with ``series`` as given; ``dicom_options`` (``tilt=``, ``uneven=``) apply to DICOM only,
    ``volume=`` also to a 4-D NIfTI.

    Example:
        >>> load_study(Path("study_folder"), "1", uneven="keep")  # doctest: +SKIP
    """
    from ctlens.io import load
    from ctlens.io.loader import file_kind

    check_series_input(path, series)
    if file_kind(path) != "dicom":
        volume = dicom_options.get("volume")
        return load(path) if volume is None else load(path, volume=volume)
    return load(path, series=series, **dicom_options)
