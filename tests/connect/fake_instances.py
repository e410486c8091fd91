"""Small synthetic DICOM instances for the networking tests (CT slices, a text SR), made in memory."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _meta(ds: Dataset, sop_class: str) -> Dataset:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def ct_slice(study_uid: str, series_uid: str, index: int = 0, size: int = 16) -> Dataset:
    """A CT image (``size`` x ``size``, int16) of the given study and series, explicit VR little endian."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality, ds.PatientID, ds.InstanceNumber = "CT", "FAKE", index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = 0.0, 1.0
    ds.PixelData = (np.arange(size * size, dtype=np.int16).reshape(size, size) + index).tobytes()
    return _meta(ds, CTImageStorage)


def text_sr(study_uid: str, series_uid: str) -> Dataset:
    """A minimal Basic Text SR header (no pixel data): another SOP class in the same association."""
    ds = Dataset()
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality, ds.PatientID = "SR", "FAKE"
    ds.ValueType = "CONTAINER"
    return _meta(ds, BASIC_TEXT_SR)
