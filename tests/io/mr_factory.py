"""Synthetic MR DICOM for the #23 tests: multi-volume series, Siemens mosaics with a CSA header, enhanced 4-D files.

Everything is generated here with pydicom (no copies of real data). Every writer returns one :class:`VolumeTruth`
per volume: what a correct reader returns for that volume (``ctlens.core.volume`` conventions: ``hu[z, y, x]``
ascending along the slice normal, ``affine`` from ``(z, y, x, 1)`` to LPS mm). MR values are the stored values
(slope 1, intercept 0): ``PixelPaddingValue`` pixels keep their value (padding means air in CT only).

The CSA header of a mosaic is written in Siemens' CSA2 binary layout as read by ``nibabel.nicom.csareader``:
``"SV10" "\\4\\3\\2\\1"``, tag count, 77; per tag a 64-byte name, VM, a 4-byte VR, SyngoDT, item count, 77; per item
four int32 (the second the item's length) and the value, null-terminated and padded to 4 bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
PRONE_AXIAL = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
"""Rows to the patient's right, columns to anterior (a prone patient's axial images): no axis stored along LPS."""
OBLIQUE = (0.980067, 0.198669, 0.0, -0.038763, 0.191229, -0.980779)
"""Rotated about z by about 11.5 degrees, then tilted: orthonormal to 6 decimals."""


@dataclass
class VolumeTruth:
    """One volume as a correct reader returns it."""

    hu: np.ndarray
    affine: np.ndarray
    paths: list[Path]
    fields: dict[str, Any] = field(default_factory=dict)
    """The per-volume header fields it was written with."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]


def csa2(tags: dict[str, tuple[str, Sequence[object]]]) -> bytes:
    """A Siemens CSA2 header holding ``tags`` (name -> (VR, items)), see the module docstring."""
    out = bytearray(b"SV10\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77))
    for name, (vr, items) in tags.items():
        out += struct.pack("<64si4s3i", name.encode(), len(items), vr.encode().ljust(4, b"\0"), 0, len(items), 77)
        for item in items:
            data = str(item).encode() + b"\0"
            out += struct.pack("<4i", len(data), len(data), 77, len(data))
            out += data + b"\0" * (-len(data) % 4)
    return bytes(out)


def _r6(x: float) -> float:
    v = round(float(x), 6)
    return 0.0 if v == 0 else v


def _ds(x: float) -> str:
    text = f"{_r6(x):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _geometry(orientation: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iop = np.array([_r6(v) for v in orientation])
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def _affine(first: np.ndarray, row: np.ndarray, col: np.ndarray, normal: np.ndarray, spacing: Sequence[float]):
    out = np.eye(4)
    out[:3, :3] = np.column_stack([normal * spacing[0], col * spacing[1], row * spacing[2]])
    out[:3, 3] = first
    return out


def _pixels(rng: np.random.Generator, n: int, rows: int, cols: int, volume: int) -> np.ndarray:
    """12-bit stored values with a slice- and volume-specific pattern (any mix-up shows)."""
    zz, yy, xx = np.mgrid[0:n, 0:rows, 0:cols]
    base = (7 * yy + 13 * xx + 101 * zz + 331 * volume) % 1500 + 100
    return (base + rng.integers(0, 50, size=base.shape)).astype(np.uint16)


def _pad(raw: np.ndarray, value: int | None) -> None:
    if value is None:
        return
    _, rows, cols = raw.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    outside = (yy - (rows - 1) / 2) ** 2 + (xx - (cols - 1) / 2) ** 2 > (0.45 * min(rows, cols)) ** 2
    raw[:, outside] = value


def _base(sop_class: str, series_uid: str, study_uid: str, frame_uid: str, **common: Any) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20240102"
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^MR", "SYN-MR-1", "19700101", "O"
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Synthetic"
    ds.MagneticFieldStrength = "3"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 5
    ds.AcquisitionNumber = 1
    ds.RepetitionTime = "2000"
    ds.EchoTime = "30"
    ds.PatientPosition = "HFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for keyword, value in common.items():
        setattr(ds, keyword, value)
    return ds


def _tm(seconds: float) -> str:
    whole, micro = divmod(round(seconds * 1e6), 10**6)
    return f"{whole // 3600:02d}{whole // 60 % 60:02d}{whole % 60:02d}.{micro:06d}"


def write_mr_series(
    folder: str | Path,
    volumes: Sequence[dict[str, Any]],
    *,
    n_slices: int = 6,
    rows: int = 12,
    cols: int = 10,
    spacing: Sequence[float] = (3.0, 1.5, 1.25),
    origin: Sequence[float] = (-7.0, -9.0, 11.0),
    orientation: Sequence[float] = AXIAL,
    descending: bool = False,
    series_uid: str | None = None,
    description: str = "mr test",
    padding_value: int | None = None,
    seed: int = 0,
    prefix: str = "MR",
    volume_seconds: float = 2.0,
) -> list[VolumeTruth]:
    """Write one classic (one file per slice) MR series of ``len(volumes)`` volumes at the same positions.

    ``volumes[v]``: header keyword -> value for every slice of volume ``v`` (``EchoNumbers``, ``ImageType``,
    ``AcquisitionNumber``, ``TemporalPositionIdentifier``, ``DiffusionBValue``, ``SeriesNumber``...).
    Slices are acquired in ascending order along the normal (``descending``: the other way); InstanceNumber runs
    through all volumes in order; AcquisitionTime/ContentTime advance ``volume_seconds`` per volume.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    row, col, normal = _geometry(orientation)
    offsets = np.arange(n_slices) * spacing[0]
    order = offsets[::-1] if descending else offsets
    truths: list[VolumeTruth] = []
    instance = 0
    for v, fields in enumerate(volumes):
        raw = _pixels(rng, n_slices, rows, cols, v)
        _pad(raw, padding_value)
        paths = []
        for i, off in enumerate(order):
            k = int(round(off / spacing[0]))
            ipp = np.array([_r6(x) for x in np.asarray(origin, float) + off * normal])
            instance += 1
            ds = _base(MR_STORAGE, series_uid, study_uid, frame_uid, SeriesDescription=description)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.InstanceNumber = instance
            ds.AcquisitionTime = ds.ContentTime = _tm(36000.0 + v * volume_seconds + i * 0.05)
            ds.ImagePositionPatient = [_ds(x) for x in ipp]
            ds.ImageOrientationPatient = [_ds(x) for x in orientation]
            ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[2])]
            ds.SliceThickness = ds.SpacingBetweenSlices = _ds(spacing[0])
            ds.SliceLocation = _ds(float(ipp @ normal))
            ds.Rows, ds.Columns = rows, cols
            for keyword, value in fields.items():
                setattr(ds, keyword, value)
            if padding_value is not None:
                ds.add_new(0x00280120, "US", int(padding_value))
            ds.PixelData = np.ascontiguousarray(raw[k]).tobytes()
            ds["PixelData"].VR = "OW"
            path = folder / f"{prefix}_{v:03d}_{i:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        first = np.array([_r6(x) for x in np.asarray(origin, float)])
        truths.append(VolumeTruth(raw.astype(np.int16), _affine(first, row, col, normal, spacing), paths, dict(fields)))
    return truths


def write_mosaic_series(
    folder: str | Path,
    n_volumes: int = 2,
    *,
    n_slices: int = 5,
    rows: int = 8,
    cols: int = 6,
    spacing: Sequence[float] = (4.0, 2.0, 2.5),
    origin: Sequence[float] = (-30.0, -20.0, -12.0),
    orientation: Sequence[float] = AXIAL,
    reversed_normal: bool = False,
    bvalues: Sequence[float] | None = None,
    directions: Sequence[Sequence[float]] | None = None,
    seed: int = 0,
) -> list[VolumeTruth]:
    """Write a Siemens mosaic series: one file per volume, ``n_slices`` tiles of ``rows x cols`` in each.

    ``origin`` is the position of the first tile (the first slice acquired); the stored ImagePositionPatient is the
    corner of the whole mosaic, as Siemens writes it. ``reversed_normal``: the CSA SliceNormalVector points against
    ``row x column`` (tiles stored from the other end). ``bvalues`` / ``directions``: a diffusion series (CSA
    ``B_value`` / ``DiffusionGradientDirection``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    row, col, normal = _geometry(orientation)
    csa_normal = -normal if reversed_normal else normal
    grid = math.ceil(math.sqrt(n_slices))
    big_rows, big_cols = grid * rows, grid * cols
    first = np.asarray(origin, float)
    corner = first - row * spacing[2] * (big_cols - cols) / 2 - col * spacing[1] * (big_rows - rows) / 2
    truths = []
    for v in range(n_volumes):
        tiles = _pixels(rng, n_slices, rows, cols, v)
        mosaic = np.zeros((big_rows, big_cols), np.uint16)
        for k in range(n_slices):
            r0, c0 = (k // grid) * rows, (k % grid) * cols
            mosaic[r0 : r0 + rows, c0 : c0 + cols] = tiles[k]
        ds = _base(MR_STORAGE, series_uid, study_uid, frame_uid, SeriesDescription="ep2d mosaic")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
        ds.InstanceNumber = v + 1
        ds.AcquisitionNumber = v + 1
        ds.AcquisitionTime = ds.ContentTime = _tm(36000.0 + 2.0 * v)
        ds.ImagePositionPatient = [_ds(x) for x in corner]
        ds.ImageOrientationPatient = [_ds(x) for x in orientation]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[2])]
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds(spacing[0])
        ds.Rows, ds.Columns = big_rows, big_cols
        tags: dict[str, tuple[str, Sequence[object]]] = {
            "NumberOfImagesInMosaic": ("US", [n_slices]),
            "SliceNormalVector": ("FD", [f"{x:.8f}" for x in csa_normal]),
            "MosaicRefAcqTimes": ("FD", [f"{0.1 * k:.4f}" for k in range(n_slices)]),
        }
        if bvalues is not None:
            tags["B_value"] = ("IS", [int(bvalues[v])])
            if directions is not None and bvalues[v] > 0:
                tags["DiffusionGradientDirection"] = ("FD", [f"{x:.8f}" for x in directions[v]])
        ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
        ds.add_new(0x00291008, "CS", "IMAGE NUM 4")
        ds.add_new(0x00291010, "OB", csa2(tags))
        ds.PixelData = mosaic.tobytes()
        ds["PixelData"].VR = "OW"
        path = folder / f"MOSAIC_{v:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        hu = tiles if not reversed_normal else tiles[::-1]
        low = first if not reversed_normal else first + (n_slices - 1) * spacing[0] * csa_normal
        fields = {} if bvalues is None else {"b": float(bvalues[v])}
        truths.append(VolumeTruth(hu.astype(np.int16), _affine(low, row, col, normal, spacing), [path], fields))
    return truths


ENHANCED_LAYOUTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "philips": ("Philips Medical Systems", (0x00209056, 0x00209057, 0x00209128)),
    "canon": ("CANON_MEC", (0x00209128, 0x00209056, 0x00209057)),
}
"""Vendor -> (Manufacturer, DimensionIndexSequence pointers) of the enhanced 4-D files real scanners write.

Philips lists the spatial dimensions (StackID, InStackPositionNumber) before TemporalPositionIndex, Canon and
Bruker the other way round (dcm2niix's notes in ``nii_dicom.cpp``: "Philips puts spatial position as lower item
than temporal position, the reverse is true for Bruker and Canon"). Siemens XA and GE enhanced files hold one
volume per file: dcm2niix reads DimensionIndexValues only for Philips, Canon, Bruker and unnamed vendors and sorts
the frames of any other vendor's file by position alone, which mixes the time points of a 4-D file.
"""
FRAME_ORDERS = ("time-major", "slice-major", "shuffled")


def write_enhanced_mr(
    path: str | Path,
    n_volumes: int = 3,
    *,
    n_slices: int = 4,
    rows: int = 10,
    cols: int = 8,
    spacing: Sequence[float] = (2.0, 1.0, 1.5),
    origin: Sequence[float] = (5.0, -3.0, 20.0),
    orientation: Sequence[float] = CORONAL,
    vendor: str = "philips",
    frame_order: str = "shuffled",
    descending: bool = False,
    diffusion: Sequence[tuple[float, Sequence[float]]] | None = None,
    seed: int = 0,
) -> list[VolumeTruth]:
    """Write one enhanced MR file of ``n_volumes`` time points, as ``vendor`` writes it (:data:`ENHANCED_LAYOUTS`).

    Every frame carries StackID, InStackPositionNumber, TemporalPositionIndex and the DimensionIndexValues that
    the DimensionIndexSequence (with its DimensionOrganizationUID) points at. ``frame_order``: frames stored time
    point by time point (``time-major``), position by position (``slice-major``) or in random order
    (``shuffled``). ``descending``: InStackPositionNumber 1 is the slice farthest along ``row x column``.

    ``diffusion``: a DWI file instead, one ``(b, direction)`` per volume in acquisition order (MRDiffusionSequence
    per frame); TemporalPositionIndex gives way to two dimensions as Philips writes them, the b-value's rank and
    the direction's number (in order of first use; 1 for b = 0), so the acquisition order is direction by
    direction, b-value by b-value within each.
    """
    if frame_order not in FRAME_ORDERS:
        raise ValueError(f"frame_order must be one of {FRAME_ORDERS}")
    manufacturer, pointers = ENHANCED_LAYOUTS[vendor]
    b_rank: dict[float, int] = {}
    g_number: dict[tuple[float, ...], int] = {}
    if diffusion is not None:
        if len(diffusion) != n_volumes:
            raise ValueError("one (b, direction) per volume")
        b_rank = {b: i + 1 for i, b in enumerate(sorted({float(b) for b, _ in diffusion}))}
        for _, d in diffusion:
            key = tuple(float(x) for x in d)
            if any(key) and key not in g_number:
                g_number[key] = len(g_number) + 1
        pairs = {(b_rank[float(b)], g_number.get(tuple(float(x) for x in d), 1)) for b, d in diffusion}
        if len(pairs) != n_volumes:
            raise ValueError("two volumes would share one (b-value rank, direction number) index")
        spatial = tuple(p for p in pointers if p != 0x00209128)
        diffusion_dims = (0x00189087, 0x00189089)
        pointers = spatial + diffusion_dims if pointers[0] != 0x00209128 else diffusion_dims[::-1] + spatial
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    row, col, normal = _geometry(orientation)
    frames = [(t, k) for t in range(n_volumes) for k in range(n_slices)]
    if frame_order == "slice-major":
        frames = [(t, k) for k in range(n_slices) for t in range(n_volumes)]
    stored = [frames[i] for i in (rng.permutation(len(frames)) if frame_order == "shuffled" else range(len(frames)))]
    raws = [_pixels(rng, n_slices, rows, cols, t) for t in range(n_volumes)]
    ds = _base(ENHANCED_MR_STORAGE, generate_uid(), generate_uid(), generate_uid(), SeriesDescription="enhanced 4d")
    ds.Manufacturer = manufacturer
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.InstanceNumber = 1
    ds.ContentTime = _tm(36000.0)
    ds.AcquisitionDateTime = "20240102100000"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = len(stored)
    if diffusion is None:
        ds.NumberOfTemporalPositions = n_volumes
    organization_uid = generate_uid()
    organization = Dataset()
    organization.DimensionOrganizationUID = organization_uid
    ds.DimensionOrganizationSequence = DicomSequence([organization])
    ds.DimensionOrganizationType = "3D_TEMPORAL"
    labels = {
        0x00209056: "Stack ID",
        0x00209057: "In-Stack Position Number",
        0x00209128: "Temporal Position Index",
        0x00189087: "Diffusion b-value",
        0x00189089: "Diffusion Gradient Orientation",
    }
    dims = []
    for pointer in pointers:
        dim = Dataset()
        dim.DimensionOrganizationUID = organization_uid
        group_pointer = 0x00189117 if pointer >> 16 == 0x0018 else 0x00209111  # MRDiffusion / FrameContent
        dim.DimensionIndexPointer, dim.FunctionalGroupPointer = pointer, group_pointer
        dim.DimensionDescriptionLabel = labels[pointer]
        dims.append(dim)
    ds.DimensionIndexSequence = DicomSequence(dims)
    shared = Dataset()
    measures, plane_o, transform = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = [_ds(spacing[1]), _ds(spacing[2])]
    measures.SliceThickness = measures.SpacingBetweenSlices = _ds(spacing[0])
    plane_o.ImageOrientationPatient = [_ds(x) for x in orientation]
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = "1", "0", "US"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([plane_o])
    shared.PixelValueTransformationSequence = DicomSequence([transform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame, pixels = [], []
    for t, k in stored:
        item, content, position, frame_type = Dataset(), Dataset(), Dataset(), Dataset()
        in_stack = n_slices - k if descending else k + 1
        index = {0x00209056: 1, 0x00209057: in_stack, 0x00209128: t + 1}
        if diffusion is not None:
            b, direction = float(diffusion[t][0]), tuple(float(x) for x in diffusion[t][1])
            index[0x00189087], index[0x00189089] = b_rank[b], g_number.get(direction, 1)
            mr_diffusion = Dataset()
            mr_diffusion.DiffusionBValue = b
            mr_diffusion.DiffusionDirectionality = "DIRECTIONAL" if any(direction) else "NONE"
            if any(direction):
                gradient = Dataset()
                gradient.DiffusionGradientOrientation = list(direction)
                mr_diffusion.DiffusionGradientDirectionSequence = DicomSequence([gradient])
            item.MRDiffusionSequence = DicomSequence([mr_diffusion])
        else:
            content.TemporalPositionIndex = t + 1
        content.StackID = "1"
        content.InStackPositionNumber = in_stack
        content.DimensionIndexValues = [index[p] for p in pointers]
        acquired = 36000.0 + 60.0 * t + (in_stack - 1)
        content.FrameAcquisitionDateTime = "20240102" + _tm(acquired)
        position.ImagePositionPatient = [_ds(x) for x in np.asarray(origin, float) + k * spacing[0] * normal]
        frame_type.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        item.FrameContentSequence = DicomSequence([content])
        item.PlanePositionSequence = DicomSequence([position])
        item.MRImageFrameTypeSequence = DicomSequence([frame_type])
        per_frame.append(item)
        pixels.append(raws[t][k])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.ascontiguousarray(np.stack(pixels)).tobytes()
    ds["PixelData"].VR = "OW"
    ds.save_as(path, enforce_file_format=True)
    if not np.array_equal(pydicom.dcmread(path).pixel_array, np.stack(pixels)):
        raise AssertionError(f"{path}: pydicom decodes other values than were written")
    first = np.array([_r6(x) for x in np.asarray(origin, float)])
    return [
        VolumeTruth(raws[t].astype(np.int16), _affine(first, row, col, normal, spacing), [path], {"t": t + 1})
        for t in range(n_volumes)
    ]
