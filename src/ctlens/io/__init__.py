"""Reading and writing images: DICOM, NIfTI, NRRD/MHA, 2-D images; archives; de-identification.

Example:
    >>> from ctlens.io import file_kind
    >>> file_kind("scan.nii.gz"), file_kind("series/")
    ('nifti', 'dicom')
"""

from ctlens.io.annotations import slice_index_for_sop, voc_annotations_for_volume
from ctlens.io.dicom_reader import list_series, read_dicom
from ctlens.io.loader import file_kind, load, save

__all__ = [
    "file_kind",
    "list_series",
    "load",
    "read_dicom",
    "save",
    "slice_index_for_sop",
    "voc_annotations_for_volume",
]
