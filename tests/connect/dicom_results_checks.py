"""Helpers of the results-as-DICOM tests: dciodvfy, synthetic findings, and reading SEG frames back.

Expected values are computed here from the written series' truth (``tests/io/dicom_factory.py``) or the
reader's hashed SOP UIDs, never with the code under test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ctlens.analysis.findings import Candidate, Findings

RIGHT, LEFT = 1, 2
PATIENT = {"PatientName": "Phantom^Chest", "PatientID": "PHANTOM-1", "AccessionNumber": "ACC-1"}


def write_volume_series(volume, folder: Path, *, descending: bool = False, seed: int = 0) -> list[str]:
    """Write an int16 HU Volume as a single-frame CT series (one file per slice); return SOP UIDs in slice order.

    ``descending`` stores slice 0 last (feet-first order) and the file names are shuffled, so neither the
    storage order nor the file order says which slice a file is.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = volume.shape[0]
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    row, col = volume.direction[:, 2], volume.direction[:, 1]
    sops = [generate_uid() for _ in range(n)]
    names = rng.permutation(n)
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, sops[k]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sops[k]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        for keyword, value in PATIENT.items():
            setattr(ds, keyword, value)
        ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime, ds.StudyID = (
            "19700101",
            "O",
            "20240101",
            "1200",
            "1",
        )
        ds.ReferringPhysicianName, ds.PositionReferenceIndicator = "", ""
        ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.AcquisitionNumber = "CT", "ctlens test", 3, 1
        ds.InstanceNumber = (n - k) if descending else (k + 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in volume.world((k, 0, 0))]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
        ds.PixelSpacing = [f"{volume.spacing[1]:g}", f"{volume.spacing[2]:g}"]
        ds.SliceThickness = f"{volume.spacing[0]:g}"
        ds.KVP, ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "120", "0", "1", "HU"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(volume.array[k].astype(np.int16)).tobytes()
        ds.save_as(folder / f"IM{int(names[k]):04d}.dcm", enforce_file_format=True)
    return sops


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error -`` lines dciodvfy prints for ``path`` (skips the test when dicom3tools is missing)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


_MAX_CHARS = {"LO": 64, "SH": 16, "CS": 16, "PN": 64, "UI": 64, "DS": 16, "IS": 12, "ST": 1024, "LT": 10240}


def vr_length_errors(ds: pydicom.Dataset) -> list[str]:
    """Values longer than their VR allows (PS3.5 table 6.2-1), anywhere in ``ds`` (sequences included)."""
    errors = []
    for elem in ds.iterall():
        limit = _MAX_CHARS.get(elem.VR)
        if limit is None or elem.value is None:
            continue
        values = elem.value if elem.VM > 1 else [elem.value]
        for value in values:
            text = str(value.original_string if hasattr(value, "original_string") and value.original_string else value)
            if len(text) > limit:
                errors.append(f"{elem.keyword or elem.tag} ({elem.VR}): {len(text)} > {limit} characters")
    return errors


def synthetic_findings(shape: tuple[int, int, int], *, lungs: bool = True) -> Findings:
    """Chest findings on ``shape`` whose masks differ on every slice (a wrong slice order shows).

    Right lung: columns left of the middle, rows ``<= z + 1``; left lung: right half, rows below the middle,
    columns from ``middle + z``. Candidate 1 (nodule, left) has per-slice boxes; candidate 2 (mass, right) only
    a bbox over the last three slices.
    """
    n, rows, cols = shape
    z, y, x = np.mgrid[0:n, 0:rows, 0:cols]
    labels = np.zeros(shape, np.uint8)
    labels[(x < cols // 2) & (y <= z + 1)] = RIGHT
    labels[(x >= cols // 2 + z) & (y > rows // 2)] = LEFT
    boxes = {k: (2 + k, 3, 6 + k, 5 + 2 * k) for k in range(1, min(n, 4))}
    candidates = [
        Candidate(
            centre_voxel=(2.0, 5.0, 6.0),
            diameter_mm=12.3,
            volume_ml=0.97,
            mean_hu=-12.5,
            score=0.8123,
            kind="nodule",
            side="left",
            slice_range=(1, 3),
            bbox=(1, 3, 3, 3, 9, 11),
            slice_boxes=boxes,
        ),
        Candidate(
            diameter_mm=34.5,
            volume_ml=21.5,
            mean_hu=15.25,
            score=1 / 3,
            kind="mass",
            side="right",
            bbox=(n - 3, 10, 12, n - 1, 20, 25),
        ),
    ]
    heat = np.zeros(shape, np.float32)
    heat[2, 3:7, 3:6] = 1.0
    return Findings(
        region="chest",
        method="synthetic",
        measurements={
            "region_coverage": {"chest": 1.0},
            "lung_volume_ml": 2668.8,
            "right_lung_volume_ml": 1106.1,
            "left_lung_volume_ml": 1562.7,
            "laa950_percent": 1.185,
            "mean_lung_density_hu": -774.56,
            "pd15_hu": -901.0,
            "lung_voxels": 798204,
        },
        candidates=candidates,
        heatmap=heat,
        roi_mask=labels > 0 if lungs else None,
        lung_labels=labels if lungs else None,
        input_shape=shape,
    )


def expected_planes(findings: Findings, z: int, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Segment label -> the expected mask of volume slice ``z`` (from the findings, computed independently)."""
    _, rows, cols = shape
    out = {}
    if findings.lung_labels is not None:
        out["right lung"] = findings.lung_labels[z] == RIGHT
        out["left lung"] = findings.lung_labels[z] == LEFT
    for rank, c in enumerate(findings.candidates, start=1):
        plane = np.zeros((rows, cols), bool)
        box = c.slice_boxes.get(z)
        if not c.slice_boxes and c.bbox[0] <= z <= c.bbox[3]:
            box = (c.bbox[1], c.bbox[2], c.bbox[4], c.bbox[5])
        if box is not None:
            plane[box[0] : box[2] + 1, box[1] : box[3] + 1] = True
        label = f"candidate {rank} ({', '.join(p for p in (c.kind, c.side) if p)})"
        out[label] = plane
    return out


def segment_labels(seg: pydicom.Dataset) -> dict[str, int]:
    """Segment label -> segment number."""
    return {str(s.SegmentLabel): int(s.SegmentNumber) for s in seg.SegmentSequence}


def frame_sources(seg: pydicom.Dataset) -> list[tuple[str, list[float], int]]:
    """Per frame: (referenced source SOP instance UID, ImagePositionPatient, segment number)."""
    out = []
    shared = seg.SharedFunctionalGroupsSequence[0]
    for frame in seg.PerFrameFunctionalGroupsSequence:
        sop = str(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        ipp = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        ident = frame if "SegmentIdentificationSequence" in frame else shared  # one segment: shared groups
        out.append((sop, ipp, int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber)))
    return out


def check_seg(
    seg_path: Path, findings: Findings, shape: tuple[int, int, int], slice_of: dict[str, int], ipps: dict[str, list]
) -> pydicom.Dataset:
    """Assert the SEG at ``seg_path`` matches: frames at their source's position, masks equal the findings'.

    ``slice_of``: source SOP UID -> expected volume slice; ``ipps``: source SOP UID -> its ImagePositionPatient.
    ``shift`` is not modelled: every source pixel (0, 0) is the volume slice's pixel (0, 0).
    """
    assert not dciodvfy_errors(seg_path)
    seg = hd.seg.segread(seg_path)
    assert not vr_length_errors(seg)
    labels = segment_labels(seg)
    expected_any = {z: expected_planes(findings, z, shape) for z in set(slice_of.values())}
    want_labels = [label for label in expected_planes(findings, 0, shape)]
    assert sorted(labels) == sorted(want_labels)
    assert list(labels.values()) == list(range(1, len(labels) + 1))
    for sop, ipp, _ in frame_sources(seg):
        assert sop in slice_of, f"frame references {sop}, not a source instance"
        assert ipp == [float(v) for v in ipps[sop]]
    sops = sorted(slice_of)
    numbers = [labels[label] for label in want_labels]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=sops, segment_numbers=numbers, assert_missing_frames_are_empty=True
    )
    for i, sop in enumerate(sops):
        for j, label in enumerate(want_labels):
            want = expected_any[slice_of[sop]][label]
            assert np.array_equal(pixels[i, :, :, j].astype(bool), want), f"{label} on source {sop}"
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == set(slice_of)
    return seg


def _value(measurement: hd.sr.Measurement) -> float:
    """The exact number of a measurement's NUM item: the FloatingPointValue when present, else the DS."""
    mv = measurement[0].MeasuredValueSequence[0]
    return float(mv.FloatingPointValue) if "FloatingPointValue" in mv else float(mv.NumericValue)


def sr_groups(sr: pydicom.Dataset) -> dict[str, dict]:
    """Tracking identifier -> {"uid", "segment", "type", "sites", "values": {(concept meaning, unit): value}}."""
    report = hd.sr.MeasurementReport.from_sequence([sr])
    out = {}
    for group in [*report.get_volumetric_roi_measurement_groups(), *report.get_image_measurement_groups()]:
        ref = getattr(group, "referenced_segment", None)
        out[group.tracking_identifier] = {
            "uid": group.tracking_uid,
            "segment": ref.referenced_segment_numbers[0] if ref is not None else None,
            "seg_uid": ref.referenced_sop_instance_uid if ref is not None else None,
            "type": group.finding_type.meaning if group.finding_type else None,
            "sites": [(s.value.meaning, s.laterality.meaning if s.laterality else None) for s in group.finding_sites],
            "values": {(m.name.meaning, m.unit.value): _value(m) for m in group.get_measurements()},
        }
    return out


def check_sr_candidates(groups: dict, seg: pydicom.Dataset | None, findings: Findings) -> None:
    """Each candidate's SR group holds exactly its numbers, type, site and SEG segment reference."""
    labels = segment_labels(seg) if seg is not None else {}
    tracking = {str(s.SegmentLabel): str(s.TrackingUID) for s in seg.SegmentSequence} if seg is not None else {}
    for rank, c in enumerate(findings.candidates, start=1):
        label = f"candidate {rank} ({c.kind}, {c.side})"
        group = groups[label]
        assert group["values"] == {
            ("Diameter", "mm"): c.diameter_mm,
            ("Volume", "mL"): c.volume_ml,
            ("Attenuation Coefficient", "[hnsf'U]"): c.mean_hu,
            ("candidate score (model output, not a diagnosis)", "1"): c.score,
        }
        assert group["type"] == {"nodule": "Nodule", "mass": "Mass"}[c.kind]
        assert group["sites"] == [("Lung", c.side.capitalize())]
        if seg is not None:
            assert group["segment"] == labels[label] and group["seg_uid"] == seg.SOPInstanceUID
            assert group["uid"] == tracking[label]


def check_sr_lungs(groups: dict, findings: Findings) -> None:
    """The lung, body-region and summary groups hold exactly the findings' measurements."""
    m = findings.measurements
    assert groups["right lung"]["values"] == {("Volume", "mL"): m["right_lung_volume_ml"]}
    assert groups["left lung"]["values"] == {("Volume", "mL"): m["left_lung_volume_ml"]}
    assert groups["right lung"]["sites"] == [("Lung", "Right")]
    assert groups["lungs"]["values"] == {
        ("Volume", "mL"): m["lung_volume_ml"],
        ("lung volume below -950 HU (LAA-950)", "%"): m["laa950_percent"],
        ("Attenuation Coefficient", "[hnsf'U]"): m["mean_lung_density_hu"],
        ("15th percentile of lung density (PD15)", "[hnsf'U]"): m["pd15_hu"],
        ("number of voxels", "{voxels}"): m["lung_voxels"],
    }
    coverage = {("fraction of slices showing the " + k, "1"): v for k, v in m["region_coverage"].items()}
    assert groups["body region"]["values"] == coverage
    count = groups["ctlens measurements"]["values"][("number of candidates (model output)", "1")]
    assert count == len(findings.candidates)
