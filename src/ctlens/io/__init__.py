"""Reading and writing images: DICOM, NIfTI, NRRD/MHA, 2-D images; archives; de-identification.

Example:
    >>> from ctlens.io import file_kind
    >>> file_kind("scan.nii.gz"), file_kind("series/")
    ('nifti', 'dicom')
"""

from typing import TYPE_CHECKING, Any

from ctlens.io.annotations import slice_index_for_sop, voc_annotations_for_volume
from ctlens.io.dicom_reader import list_series, read_dicom
from ctlens.io.loader import file_kind, load, load_volumes, save

__all__ = [
    "DicomWebClient",
    "file_kind",
    "list_series",
    "load",
    "load_volumes",
    "pull_series",
    "read_dicom",
    "save",
    "slice_index_for_sop",
    "voc_annotations_for_volume",
]

if TYPE_CHECKING:  # pragma: no cover
    from ctlens.io.dicomweb import DicomWebClient, pull_series


def __getattr__(name: str) -> Any:
    """The DICOMweb client is imported lazily (httpx), so ``import ctlens.io`` stays fast."""
    if name in ("DicomWebClient", "pull_series"):
        from ctlens.io import dicomweb

        return getattr(dicomweb, name)
    raise AttributeError(f"module 'ctlens.io' has no attribute {name!r}")
