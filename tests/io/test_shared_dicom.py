"""Every DICOM series in ../shared/data against SimpleITK, dcm2niix's facts and the headers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import ctlens
from ctlens.core.errors import GantryTiltError, UnevenSpacingError
from ctlens.io import list_series, slice_index_for_sop, voc_annotations_for_volume
from ctlens.io.dicom_headers import dicom_folders
from shared_data import data_dir

pytestmark = pytest.mark.shared_data


def _is_tilted(folder: Path) -> bool:
    first = pydicom.dcmread(next(p for p in sorted(folder.iterdir())), stop_before_pixels=True)
    return abs(float(first.get("GantryDetectorTilt", 0) or 0)) > 0


def _sitk_read(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    (uid,) = reader.GetGDCMSeriesIDs(str(folder))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), uid))
    return reader.Execute()


def test_shared_data_has_series() -> None:
    assert len(dicom_folders(data_dir())) >= 4


@pytest.mark.parametrize("index", range(8))
def test_series_matches_simpleitk(index: int) -> None:
    dirs = dicom_folders(data_dir())
    if index >= len(dirs):
        pytest.skip(f"only {len(dirs)} DICOM series in the shared data")
    folder = dirs[index]
    vol = ctlens.load(folder)
    if _is_tilted(folder):
        pytest.skip(f"{folder.name}: gantry tilt, SimpleITK's geometry is wrong here (checked in the tilt test)")
    ref = _sitk_read(folder)
    ref_arr = sitk.GetArrayFromImage(ref)
    assert vol.array.shape == ref_arr.shape
    assert np.abs(vol.array.astype(np.int64) - ref_arr.astype(np.int64)).max() == 0
    expected = ctlens.Volume.from_itk_geometry(ref_arr, ref.GetSpacing(), ref.GetOrigin(), ref.GetDirection())
    np.testing.assert_allclose(vol.affine, expected.affine, atol=1e-3)


def _ge_folder() -> Path:
    folder = data_dir() / "dcm_qa_ct_ge" / "dicom"
    if not folder.is_dir():
        pytest.skip("dcm_qa_ct_ge not in the shared data")
    return folder


def test_gantry_tilt_geometry_matches_headers_and_dcm2niix() -> None:
    folder = _ge_folder()
    vol = ctlens.load(folder, uneven="keep")  # the acquired slices, as they are (the default resamples them)
    reference = json.loads((folder.parent / "dcm2niix_reference.json").read_text())
    headers = sorted(
        (pydicom.dcmread(f, stop_before_pixels=True) for f in folder.iterdir()),
        key=lambda d: float(d.ImagePositionPatient[2]),
    )
    iop = np.array(reference["ImageOrientationPatientDICOM"], float)
    # the in-plane axes are the acquired ones (x = row cosine, y = column cosine), as dcm2niix keeps them
    np.testing.assert_allclose(vol.direction[:, 2], iop[:3], atol=1e-4)
    np.testing.assert_allclose(vol.direction[:, 1], iop[3:], atol=1e-4)
    np.testing.assert_allclose(vol.direction.T @ vol.direction, np.eye(3), atol=1e-9)
    assert vol.meta["tilt_corrected"] is True
    assert vol.meta["gantry_tilt_deg"] == pytest.approx(float(headers[0].GantryDetectorTilt), abs=0.05)
    assert vol.meta["spacing_uneven"] is True
    # each original slice plane is exactly where the headers put it: its pixel (0, 0) maps to its IPP
    dy = float(headers[0].PixelSpacing[0])
    assert dy == pytest.approx(vol.spacing[1])
    normal = vol.direction[:, 0]
    for k, ds in enumerate(headers):
        ipp = np.array(ds.ImagePositionPatient, float)
        along = (ipp - np.array(vol.origin)) @ normal
        assert along == pytest.approx(vol.meta["slice_positions_mm"][k], abs=1e-3)
        drift = (ipp - np.array(vol.origin) - along * normal) @ vol.direction[:, 1]
        if k < 14:  # the evenly spaced part: slice k sits at index k of the volume
            assert along / vol.spacing[0] == pytest.approx(k, abs=1e-3)
        np.testing.assert_allclose(vol.world((along / vol.spacing[0], drift / dy, 0)), ipp, atol=1e-3)
    # the slice thickness along the normal is the nominal 4 mm that dcm2niix reports
    assert vol.spacing[0] == pytest.approx(reference["SliceThickness"], abs=0.01)


def test_gantry_tilt_correction_moves_anatomy_into_place() -> None:
    """The tilt-corrected slice k equals the raw slice shifted by its drift along the column axis."""
    folder = _ge_folder()
    vol = ctlens.load(folder)
    headers = sorted((pydicom.dcmread(f) for f in folder.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    last = headers[-1]
    raw = last.pixel_array.astype(np.float64) * float(last.RescaleSlope) + float(last.RescaleIntercept)
    drift_px = ((np.array(last.ImagePositionPatient, float) - np.array(vol.origin)) @ vol.direction[:, 1]) / float(
        last.PixelSpacing[0]
    )
    shift = int(round(drift_px))
    assert abs(shift) > 50  # 18.5 degrees over ~150 mm
    corrected = vol.array[-1].astype(np.float64)
    a = corrected[max(shift, 0) + 5 : 512 + min(shift, 0) - 5, :]
    b = raw[max(-shift, 0) + 5 : 512 + min(-shift, 0) - 5, :]
    inside = b > -1000
    assert np.corrcoef(a[inside], b[inside])[0, 1] > 0.95


def test_gantry_tilt_refused_and_uneven_policies() -> None:
    folder = _ge_folder()
    with pytest.raises(GantryTiltError, match="gantry tilt of 18.50 degrees"):
        ctlens.load(folder, tilt="refuse")
    with pytest.raises(UnevenSpacingError, match="uneven slice spacing"):
        ctlens.load(folder, uneven="error")
    even = ctlens.load(folder, uneven="resample")
    offsets = ctlens.load(folder, uneven="keep").meta["slice_positions_mm"]
    assert even.shape[0] == int(offsets[-1] / even.spacing[0] + 1e-6) + 1
    assert even.meta["resampled_equidistant"] is True


def test_lung_series_are_two_series_of_one_study_with_annotations() -> None:
    root = data_dir() / "lung_pet_ct_dx"
    if not root.is_dir():
        pytest.skip("lung_pet_ct_dx not in the shared data")
    series = list_series(root / "Lung_Dx-A0002")
    assert len(series) == 2
    assert series[0].study_id == series[1].study_id
    assert {s.kernel for s in series} == {"B40f", "B70f"}
    annotations = root / "annotations" / "Lung_Dx-A0002"
    counts = {}
    for s in series:
        vol = ctlens.load(root / "Lung_Dx-A0002", series=s.kernel)
        boxes = voc_annotations_for_volume(vol, annotations)
        counts[s.kernel] = len({b.slice_index for b in boxes})
        assert all(b.label == "A" for b in boxes)
        for xml in annotations.glob("*.xml"):
            try:
                k = slice_index_for_sop(vol, xml.stem)
            except ctlens.CTLensError:
                continue
            sop = [
                d
                for d in (root / "Lung_Dx-A0002").rglob("*.dcm")
                if pydicom.dcmread(d, stop_before_pixels=True).SOPInstanceUID == xml.stem
            ][0]
            ds = pydicom.dcmread(sop)
            assert np.array_equal(vol.array[k], ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept))
    assert counts == {"B40f": 10, "B70f": 8}
