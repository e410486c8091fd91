"""File-name suffixes: the one list of which names are NIfTI, NRRD/MetaImage, 2-D images, zips or documents.

The loader (:func:`ctlens.io.loader.file_kind`), the readers, the DICOM reader's "not DICOM, but expected"
notes, the cache scan and the HDF5 export all decide from these tuples. Matching is on the lower-cased name.

Example:
    >>> is_volume_file("a/CT.NII.GZ"), is_volume_file("a/ct.png"), strip_suffix("a/ct.nii.gz"), strip_suffix("s.zip")
    (True, False, 'a/ct', 's')
"""

from __future__ import annotations

__all__ = [
    "DOCUMENT_SUFFIXES",
    "IMAGE2D_SUFFIXES",
    "ITK_SUFFIXES",
    "NIFTI_SUFFIXES",
    "TEXT_SUFFIXES",
    "VOLUME_SUFFIXES",
    "ZIP_SUFFIX",
    "is_document",
    "is_volume_file",
    "strip_suffix",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
"""NIfTI-1/-2 files."""
ITK_SUFFIXES: dict[str, str] = {".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage", ".mhd": "metaimage"}
"""NRRD / MetaImage suffix -> format name (``meta['source_format']``)."""
IMAGE2D_SUFFIXES: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
"""2-D image suffix -> Pillow format name."""
VOLUME_SUFFIXES = (*NIFTI_SUFFIXES, *ITK_SUFFIXES)
"""One 3-D volume per file: NIfTI, NRRD, MetaImage."""
ZIP_SUFFIX = ".zip"
"""Archives of DICOM files."""
TEXT_SUFFIXES = (".txt", ".md", ".json", ".xml", ".csv", ".tsv", ".html", ".pdf", ".py", ".log", ".yaml", ".yml")
TEXT_SUFFIXES += (".ini",)
"""Text documents: never an image."""
DOCUMENT_SUFFIXES = (*TEXT_SUFFIXES, ".nii", ".gz", ".png", ".jpg", ".zip", "license", "readme")
"""Names of files that are expected beside DICOM series and are ignored quietly when not DICOM."""
_DOCUMENT_PREFIXES = ("license", "readme")


def is_volume_file(name: str) -> bool:
    """True for a NIfTI / NRRD / MetaImage file name (any folder part is ignored).

    Example:
        >>> is_volume_file("scan.mha"), is_volume_file("scan.raw")
        (True, False)
    """
    return str(name).lower().endswith(VOLUME_SUFFIXES)


def is_document(name: str) -> bool:
    """True for a file name that is a document beside DICOM files (README, LICENSE*, .txt, .json, ...).

    Example:
        >>> is_document("README"), is_document("LICENSE.md"), is_document("IM0001")
        (True, True, False)
    """
    lower = str(name).lower()
    return lower.startswith(_DOCUMENT_PREFIXES) or lower.endswith(DOCUMENT_SUFFIXES)


def strip_suffix(name: str) -> str:
    """``name`` without its volume or ``.zip`` suffix (any case); unchanged when it has none.

    Example:
        >>> strip_suffix("Case1.NII.GZ"), strip_suffix("series/IM0001")
        ('Case1', 'series/IM0001')
    """
    lower = str(name).lower()
    for suffix in (*VOLUME_SUFFIXES, ZIP_SUFFIX):
        if lower.endswith(suffix):
            return str(name)[: -len(suffix)]
    return str(name)
