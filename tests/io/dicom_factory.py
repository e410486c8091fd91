"""Synthetic DICOM data for the io tests: CT series, scouts, multi-frame files, broken files, zips.

Everything is generated here with pydicom 3 (no copies of real data). Each writer returns a
:class:`SeriesTruth` holding what a correct reader must produce, following the conventions of
``ctlens.core.volume`` and the DICOM reader:

* ``hu`` is the expected array ``[z, y, x]`` in ascending order of ImagePositionPatient projected
  on the slice normal, ``raw * RescaleSlope + RescaleIntercept`` with PixelPaddingValue pixels set
  to -1024; int16 when slope and intercept are integral and the values fit, else float32.
* ``origin`` is the IPP of the lowest slice; ``spacing`` is ``(step along the normal, row spacing,
  column spacing)`` (the step is the median step); ``direction`` columns are
  ``(normal, column cosine, row cosine)`` where IOP = ``row cosine, column cosine`` and the
  normal is ``row cosine x column cosine``.
* For a gantry-tilted series the geometry is the one of the tilt-corrected (orthogonal) grid:
  ``affine @ (k, inplane_shift[k] / row_spacing, 0, 1)`` gives slice ``k``'s IPP.

All numbers that go into the header are rounded to 6 decimals first, and the truth is computed
from the numbers as written, so geometry comparisons can use tight tolerances.

Every file is decoded back with plain pydicom right after writing (``verify=True``), so a wrong
file fails here and not in the reader under test.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    MediaStorageDirectoryStorage,
    RLELossless,
    generate_uid,
)

__all__ = [
    "ENCAPSULATED_SYNTAXES",
    "PHI_HEADER",
    "PHI_VALUES",
    "SeriesTruth",
    "can_encode",
    "make_evil_zip",
    "make_zip",
    "truncate",
    "write_acquisitions",
    "write_ct_series",
    "write_dicomdir_like",
    "write_multiframe_ct",
    "write_non_dicom",
    "write_scout",
]

UNCOMPRESSED_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
ENCAPSULATED_SYNTAXES = {
    RLELossless: "pydicom",
    JPEG2000Lossless: "pylibjpeg",
    JPEGLSLossless: "pyjpegls",
    JPEGLosslessSV1: "",  # no encoder ships with pydicom 3 / pylibjpeg; can_encode() says so
}
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
PHI_HEADER = {
    "PatientName": "Synthetic^Patient",
    "PatientID": "SYN-PAT-001",
    "PatientBirthDate": "19700101",
    "InstitutionName": "Nowhere Hospital",
    "ReferringPhysicianName": "Doe^Referrer",
    "AccessionNumber": "SYN0001",
}
"""Identifying header values every written file carries (keyword -> value); de-identification must drop them."""
PHI_VALUES = tuple(PHI_HEADER.values())
"""The values of :data:`PHI_HEADER`, to search for in anything that leaves the process."""


# --------------------------------------------------------------------------- truth


@dataclass
class SeriesTruth:
    """What a correct reader must return for one written series (or multi-frame file)."""

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    paths: list[Path]
    """Files in slice order (a multi-frame series has one path)."""
    sop_uids: list[str]
    """Original SOPInstanceUIDs in slice order (a multi-frame series has one)."""
    series_uid: str
    study_uid: str
    description: str
    kernel: str
    ipps: np.ndarray
    """ImagePositionPatient of each slice, ``n x 3``, in slice order."""
    instance_numbers: list[int]
    """InstanceNumber of each slice, in slice order."""
    raw: np.ndarray
    """Stored values ``[z, y, x]`` in slice order (before rescale and padding)."""
    slope: float = 1.0
    intercept: float = 0.0
    padding_value: int | None = None
    transfer_syntax: str = ExplicitVRLittleEndian
    tilt_deg: float = 0.0
    inplane_shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Per slice, the offset (mm) of its IPP from slice 0 along the column cosine (gantry tilt)."""
    slice_thickness: float = 0.0
    manufacturer: str = "CTLENS SYNTHETIC"
    modality: str = "CT"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4x4 from ``(z, y, x, 1)`` to LPS mm, as ``Volume.affine``."""
        out = np.eye(4)
        out[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        out[:3, 3] = self.origin
        return out

    @property
    def normal(self) -> np.ndarray:
        return self.direction[:, 0].copy()

    @property
    def folder(self) -> Path:
        return self.paths[0].parent

    def slice_index(self, sop_uid: str) -> int:
        return self.sop_uids.index(sop_uid)


# --------------------------------------------------------------------------- helpers


def _r6(x: float) -> float:
    """Round as written in a DS (6 decimals, no negative zero)."""
    v = round(float(x), 6)
    return 0.0 if v == 0 else v


def _ds(x: float) -> str:
    text = f"{_r6(x):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts]) if parts else generate_uid()


def can_encode(transfer_syntax: str) -> bool:
    """Whether this environment can write ``transfer_syntax`` (uncompressed or a lossless encoder)."""
    if transfer_syntax in UNCOMPRESSED_SYNTAXES:
        return True
    if not ENCAPSULATED_SYNTAXES.get(transfer_syntax):
        return False
    try:
        from pydicom.pixels import get_encoder

        encoder = get_encoder(transfer_syntax)
    except (NotImplementedError, ValueError):
        return False
    return bool(encoder.is_available) and ENCAPSULATED_SYNTAXES[transfer_syntax] in encoder._available


def _design_raw(
    n: int,
    rows: int,
    cols: int,
    *,
    slope: float,
    intercept: float,
    signed: bool,
    bits_stored: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Stored values ``[z, y, x]``: a slice-specific pattern spanning about -1000..3000 HU plus noise.

    ``(7y + 13x + 101k) mod 400`` differs between any two slices (k < 400), so a wrong slice order is
    always visible; the noise keeps slices from being shifted copies of each other.
    """
    zz, yy, xx = np.mgrid[0:n, 0:rows, 0:cols]
    hu = ((7 * yy + 13 * xx + 101 * zz) % 400) * 10 - 1000 + rng.integers(0, 10, size=(n, rows, cols))
    raw = np.round((hu - intercept) / slope) + rng.integers(0, 3, size=(n, rows, cols))
    if signed:
        lo, hi = -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    else:
        lo, hi = 0, 2**bits_stored - 1
    return np.clip(raw, lo, hi).astype(np.int16 if signed else np.uint16)


def _truth_hu(raw: np.ndarray, slope: float, intercept: float, pad_mask: np.ndarray | None) -> np.ndarray:
    hu = raw.astype(np.float64) * slope + intercept
    if pad_mask is not None:
        hu[pad_mask] = -1024.0
    integral = float(slope).is_integer() and float(intercept).is_integer()
    if integral and hu.min() >= -32768 and hu.max() <= 32767:
        return hu.astype(np.int16)
    return hu.astype(np.float32)


def _apply_padding(raw: np.ndarray, padding_value: int | None, signed: bool) -> np.ndarray | None:
    """Put ``padding_value`` outside a centred disc (outside the field of view); return that mask."""
    if padding_value is None:
        return None
    n, rows, cols = raw.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    radius = 0.45 * min(rows, cols)
    outside = (yy - (rows - 1) / 2) ** 2 + (xx - (cols - 1) / 2) ** 2 > radius**2
    mask = np.broadcast_to(outside, raw.shape).copy()
    if np.any(raw[~mask] == padding_value):
        raise ValueError(f"padding value {padding_value} also occurs inside the field of view; pick another")
    info = np.iinfo(np.int16 if signed else np.uint16)
    if not info.min <= padding_value <= info.max:
        raise ValueError(f"padding value {padding_value} does not fit {'signed' if signed else 'unsigned'} 16 bit")
    raw[mask] = padding_value
    return mask


def _geometry(
    n: int,
    *,
    spacing: Sequence[float],
    origin: Sequence[float],
    orientation: Sequence[float],
    positions: Sequence[float] | None,
    tilt_deg: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Written IOP (6,), IPPs in acquisition order (n x 3), the unit normal and the tilt shifts.

    Without tilt, IPP_k = origin + offset_k * normal. With tilt (axial only), the column cosine is
    rotated about x and IPP_k = origin + (0, 0, offset_k) (the table moves along z, as in GE data).
    """
    offsets = np.arange(n) * float(spacing[0]) if positions is None else np.asarray(positions, dtype=np.float64)
    if len(offsets) != n:
        raise ValueError(f"positions has {len(offsets)} entries for {n} slices")
    if tilt_deg:
        if not np.allclose(orientation, AXIAL):
            raise ValueError("gantry tilt is only generated for axial orientation")
        t = np.deg2rad(tilt_deg)
        orientation = (1.0, 0.0, 0.0, 0.0, np.cos(t), np.sin(t))
    iop = np.array([_r6(v) for v in orientation])
    row, col = _unit(iop[:3]), _unit(iop[3:])
    if abs(float(row @ col)) > 1e-4:
        raise ValueError(f"orientation {orientation} is not orthogonal")
    normal = _unit(np.cross(row, col))
    step_dir = np.array([0.0, 0.0, 1.0]) if tilt_deg else normal
    ipps = np.array([[_r6(v) for v in np.asarray(origin, float) + off * step_dir] for off in offsets])
    return iop, ipps, normal, col


def _truth_geometry(
    ipps_sorted: np.ndarray, iop: np.ndarray, pixel_spacing: tuple[float, float], tilted: bool
) -> tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray, np.ndarray]:
    row, col = _unit(iop[:3]), _unit(iop[3:])
    normal = _unit(np.cross(row, col))
    along = ipps_sorted @ normal
    steps = np.diff(along)
    step = float(np.median(steps)) if len(steps) else 1.0
    shifts = (ipps_sorted - ipps_sorted[0]) @ col if tilted else np.zeros(len(ipps_sorted))
    direction = np.column_stack([normal, col, row])
    spacing = (step, float(pixel_spacing[0]), float(pixel_spacing[1]))
    return spacing, tuple(float(v) for v in ipps_sorted[0]), direction, shifts  # type: ignore[return-value]


def _base_dataset(
    *,
    sop_class: str,
    sop_uid: str,
    series_uid: str,
    study_uid: str,
    frame_uid: str,
    description: str,
    kernel: str,
    rows: int,
    cols: int,
    signed: bool,
    bits_stored: int,
    manufacturer: str,
    series_number: int,
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    for keyword, value in PHI_HEADER.items():
        setattr(ds, keyword, value)
    ds.Modality = "CT"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = "Synthetic"
    ds.SeriesDescription = description
    ds.StudyDescription = "synthetic study"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.ConvolutionKernel = kernel
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    return ds


def _set_pixels(ds: Dataset, raw: np.ndarray, transfer_syntax: str) -> None:
    ds.PixelData = np.ascontiguousarray(raw).tobytes()
    ds["PixelData"].VR = "OW"
    if transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif transfer_syntax != ExplicitVRLittleEndian:
        if not can_encode(transfer_syntax):
            raise NotImplementedError(f"no encoder available for {UID(transfer_syntax).name}")
        if transfer_syntax == JPEG2000Lossless and min(raw.shape[-2:]) < 32:
            # openjpeg's encoder always uses 6 DWT resolution levels: each side needs >= 2**5 pixels
            raise ValueError(f"JPEG 2000 needs rows and columns >= 32, got {raw.shape[-2:]}")
        ds.compress(
            transfer_syntax,
            raw if raw.ndim == 2 or raw.shape[0] > 1 else raw[0],
            encoding_plugin=ENCAPSULATED_SYNTAXES[transfer_syntax],
            generate_instance_uid=False,
        )


def _verify(path: Path, expected_raw: np.ndarray) -> None:
    """Decode ``path`` with plain pydicom and compare to the stored values we meant to write."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if arr.shape != expected_raw.shape or not np.array_equal(arr, expected_raw):
        raise AssertionError(f"{path}: pydicom decodes other pixel values than were written")


def _tm(seconds: float) -> str:
    """Seconds after midnight as a DICOM TM (``HHMMSS.ffffff``)."""
    whole, micro = divmod(round(seconds * 1e6), 10**6)
    return f"{whole // 3600:02d}{whole // 60 % 60:02d}{whole % 60:02d}.{micro:06d}"


def _file_stem(series_uid: str) -> str:
    return "IM_" + hashlib.sha1(series_uid.encode()).hexdigest()[:6] + "_"


# --------------------------------------------------------------------------- writers


def write_ct_series(
    folder: str | os.PathLike[str],
    *,
    n_slices: int = 8,
    rows: int = 32,
    cols: int = 32,
    spacing: Sequence[float] = (2.5, 0.7, 0.7),
    origin: Sequence[float] = (-10.0, -20.0, 30.0),
    orientation: Sequence[float] = AXIAL,
    signed: bool = True,
    bits_stored: int = 16,
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_uid: str | None = None,
    description: str = "test series",
    kernel: str = "B30f",
    transfer_syntax: str = ExplicitVRLittleEndian,
    positions: Sequence[float] | None = None,
    tilt_deg: float = 0.0,
    shuffle_names: bool = False,
    reverse_instance_numbers: bool = False,
    extension: str = ".dcm",
    padding_value: int | None = None,
    seed: int = 0,
    series_number: int = 1,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    manufacturer: str = "CTLENS SYNTHETIC",
    name_prefix: str | None = None,
    verify: bool = True,
    acquisition_number: int | None = 1,
    acquisition_time: float | None = None,
    slice_seconds: float = 0.25,
    echo_number: int | None = None,
    temporal_position: int | None = None,
) -> SeriesTruth:
    """Write one single-frame CT series (one file per slice) into ``folder`` and return its truth.

    Args:
        spacing: ``(slice step, row spacing, column spacing)`` in mm. With ``tilt_deg`` the slice step
            is the table increment along z; the step along the slice normal is ``step * cos(tilt)``.
        origin: IPP of the first acquired slice (offset 0).
        orientation: ImageOrientationPatient (row cosine, column cosine).
        positions: explicit offsets (mm) of the slices along the normal (along z with tilt), in
            acquisition order; overrides ``n_slices`` and ``spacing[0]``. Use it for missing slices,
            uneven spacing or descending acquisition.
        tilt_deg: gantry tilt (axial only): the column cosine is rotated about x by this angle,
            GantryDetectorTilt is set, and slices step along table z.
        shuffle_names: file names in random order (not the slice order).
        reverse_instance_numbers: InstanceNumber counts down along the acquisition.
        padding_value: stored value written outside a centred disc and declared as PixelPaddingValue;
            the truth has -1024 there.
        extension: ``".dcm"`` or ``""`` (files without extension).
        acquisition_number: AcquisitionNumber of every slice (None: not written).
        acquisition_time: seconds after midnight of the first acquired slice; each next slice is ``slice_seconds``
            later (AcquisitionTime and ContentTime, as a helical scanner writes them). None: no times written.
        echo_number, temporal_position: EchoNumbers / TemporalPositionIdentifier of every slice (None: not written).

    Files are named ``IM_<6 hex of the series uid>_<NNNN><extension>`` so several series can share
    a folder. InstanceNumber runs 1..n in acquisition order (``positions`` order).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = n_slices if positions is None else len(positions)
    series_uid = series_uid or _uid()
    study_uid = study_uid or _uid()
    frame_uid = frame_uid or _uid()
    stem = name_prefix if name_prefix is not None else _file_stem(series_uid)

    iop, ipps, normal, col = _geometry(
        n, spacing=spacing, origin=origin, orientation=orientation, positions=positions, tilt_deg=tilt_deg
    )
    pixel_spacing = (_r6(spacing[1]), _r6(spacing[2]))
    raw = _design_raw(n, rows, cols, slope=slope, intercept=intercept, signed=signed, bits_stored=bits_stored, rng=rng)
    pad_mask = _apply_padding(raw, padding_value, signed)
    along = ipps @ normal
    if len(np.unique(np.round(along, 6))) != n:
        raise ValueError("two slices share a position")

    instance_numbers = list(range(n, 0, -1)) if reverse_instance_numbers else list(range(1, n + 1))
    name_order = rng.permutation(n) if shuffle_names else np.arange(n)
    sop_uids = [_uid() for _ in range(n)]
    thickness = _r6(abs(spacing[0]))
    paths: list[Path] = []
    for i in range(n):  # acquisition order
        ds = _base_dataset(
            sop_class=CTImageStorage,
            sop_uid=sop_uids[i],
            series_uid=series_uid,
            study_uid=study_uid,
            frame_uid=frame_uid,
            description=description,
            kernel=kernel,
            rows=rows,
            cols=cols,
            signed=signed,
            bits_stored=bits_stored,
            manufacturer=manufacturer,
            series_number=series_number,
        )
        ds.ImageType = list(image_type)
        ds.InstanceNumber = instance_numbers[i]
        if acquisition_number is None:
            del ds.AcquisitionNumber
        else:
            ds.AcquisitionNumber = acquisition_number
        if acquisition_time is not None:
            ds.AcquisitionTime = ds.ContentTime = _tm(acquisition_time + i * slice_seconds)
        if echo_number is not None:
            ds.EchoNumbers = echo_number
        if temporal_position is not None:
            ds.TemporalPositionIdentifier = temporal_position
        ds.ImagePositionPatient = [_ds(v) for v in ipps[i]]
        ds.ImageOrientationPatient = [_ds(v) for v in iop]
        ds.SliceLocation = _ds(ipps[i][2] if tilt_deg else along[i])
        ds.SliceThickness = _ds(thickness)
        ds.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
        ds.GantryDetectorTilt = _ds(tilt_deg)
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = _ds(slope)
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        if padding_value is not None:
            ds.add_new(0x00280120, "SS" if signed else "US", int(padding_value))
        _set_pixels(ds, raw[i], transfer_syntax)
        path = folder / f"{stem}{int(name_order[i]) + 1:04d}{extension}"
        ds.save_as(path, enforce_file_format=True)
        if verify:
            _verify(path, raw[i])
        paths.append(path)

    order = np.argsort(along, kind="stable")
    ipps_sorted = ipps[order]
    sp, org, direction, shifts = _truth_geometry(ipps_sorted, iop, pixel_spacing, bool(tilt_deg))
    raw_sorted = raw[order]
    pad_sorted = pad_mask[order] if pad_mask is not None else None
    return SeriesTruth(
        hu=_truth_hu(raw_sorted, slope, intercept, pad_sorted),
        spacing=sp,
        origin=org,
        direction=direction,
        paths=[paths[i] for i in order],
        sop_uids=[sop_uids[i] for i in order],
        series_uid=series_uid,
        study_uid=study_uid,
        description=description,
        kernel=kernel,
        ipps=ipps_sorted,
        instance_numbers=[instance_numbers[i] for i in order],
        raw=raw_sorted,
        slope=float(slope),
        intercept=float(intercept),
        padding_value=padding_value,
        transfer_syntax=transfer_syntax,
        tilt_deg=float(tilt_deg),
        inplane_shift=shifts,
        slice_thickness=thickness,
        manufacturer=manufacturer,
    )


def write_acquisitions(
    folder: str | os.PathLike[str],
    positions: Sequence[Sequence[float]],
    *,
    numbered: bool = True,
    timed: bool = True,
    seconds_apart: float = 60.0,
    series_uid: str | None = None,
    prefix: str = "ACQ",
    **options: object,
) -> list[SeriesTruth]:
    """Write several acquisitions of one series (one SeriesInstanceUID, study and frame of reference) into ``folder``.

    Acquisition ``a`` has slices at ``positions[a]`` (mm along the normal, may overlap the others'), its own
    pixel values (seed ``a``), AcquisitionNumber ``a + 1`` when ``numbered`` (else no AcquisitionNumber) and, when
    ``timed``, AcquisitionTime/ContentTime per slice starting ``seconds_apart`` after the previous acquisition.
    Files are named ``<prefix><a>_<NNNN>.dcm``. Returns one :class:`SeriesTruth` per acquisition (what reading that
    acquisition's files alone gives). ``options`` go to :func:`write_ct_series`.
    """
    series_uid = series_uid or _uid()
    study_uid = str(options.pop("study_uid", None) or _uid())
    frame_uid = str(options.pop("frame_uid", None) or _uid())
    truths = []
    for a, where in enumerate(positions):
        truths.append(
            write_ct_series(  # type: ignore[arg-type]
                folder,
                positions=list(where),
                series_uid=series_uid,
                study_uid=study_uid,
                frame_uid=frame_uid,
                name_prefix=f"{prefix}{a + 1}_",
                seed=a + 11,
                acquisition_number=a + 1 if numbered else None,
                acquisition_time=36000.0 + a * seconds_apart if timed else None,
                **options,
            )
        )
    return truths


def write_scout(
    folder: str | os.PathLike[str],
    *,
    rows: int = 48,
    cols: int = 64,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_uid: str | None = None,
    localizer: bool = True,
    orientation: Sequence[float] = CORONAL,
    description: str = "topogram",
    name: str = "SCOUT0001.dcm",
    series_number: int = 99,
    seed: int = 0,
) -> Path:
    """Write one localizer image (coronal by default, other size than the axial series) and return its path.

    ``localizer=False`` leaves LOCALIZER out of ImageType, so only the "single image orthogonal to the
    main stack" rule can drop it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sop_uid = _uid()
    ds = _base_dataset(
        sop_class=CTImageStorage,
        sop_uid=sop_uid,
        series_uid=series_uid or _uid(),
        study_uid=study_uid or _uid(),
        frame_uid=frame_uid or _uid(),
        description=description,
        kernel="T20s",
        rows=rows,
        cols=cols,
        signed=False,
        bits_stored=12,
        manufacturer="CTLENS SYNTHETIC",
        series_number=series_number,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"] if localizer else ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = ["-250", "0", "100"]
    ds.ImageOrientationPatient = [_ds(v) for v in orientation]
    ds.PixelSpacing = ["5", "5"]
    ds.SliceThickness = "1"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    raw = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16)
    _set_pixels(ds, raw, ExplicitVRLittleEndian)
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    _verify(path, raw)
    return path


def write_multiframe_ct(
    path: str | os.PathLike[str],
    *,
    n_frames: int = 6,
    rows: int = 24,
    cols: int = 28,
    spacing: Sequence[float] = (3.0, 0.8, 0.6),
    origin: Sequence[float] = (-5.0, 12.0, -40.0),
    orientation: Sequence[float] = AXIAL,
    signed: bool = True,
    slope: float = 1.0,
    intercept: float = -1024.0,
    positions: Sequence[float] | None = None,
    frame_order: str = "descending",
    series_uid: str | None = None,
    study_uid: str | None = None,
    description: str = "enhanced ct",
    kernel: str = "Br40",
    transfer_syntax: str = ExplicitVRLittleEndian,
    seed: int = 0,
    verify: bool = True,
) -> SeriesTruth:
    """Write one Enhanced CT Image Storage file with ``n_frames`` frames and return its truth.

    Shared functional groups: PixelMeasures, PlaneOrientation, PixelValueTransformation (+ CT image
    frame type); per frame: PlanePosition and FrameContent. ``frame_order`` is ``"ascending"``,
    ``"descending"`` (frame 1 is the highest slice) or ``"shuffled"``, so the reader must sort by
    position. ``truth.paths``/``sop_uids`` hold the single file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = n_frames if positions is None else len(positions)
    iop, ipps, normal, _ = _geometry(
        n, spacing=spacing, origin=origin, orientation=orientation, positions=positions, tilt_deg=0.0
    )
    pixel_spacing = (_r6(spacing[1]), _r6(spacing[2]))
    raw = _design_raw(n, rows, cols, slope=slope, intercept=intercept, signed=signed, bits_stored=16, rng=rng)
    along = ipps @ normal
    ascending = np.argsort(along, kind="stable")
    if frame_order == "ascending":
        frames = ascending
    elif frame_order == "descending":
        frames = ascending[::-1]
    elif frame_order == "shuffled":
        frames = rng.permutation(n)
    else:
        raise ValueError(f"frame_order must be ascending, descending or shuffled, not {frame_order!r}")

    series_uid = series_uid or _uid()
    study_uid = study_uid or _uid()
    sop_uid = _uid()
    ds = _base_dataset(
        sop_class=EnhancedCTImageStorage,
        sop_uid=sop_uid,
        series_uid=series_uid,
        study_uid=study_uid,
        frame_uid=_uid(),
        description=description,
        kernel=kernel,
        rows=rows,
        cols=cols,
        signed=signed,
        bits_stored=16,
        manufacturer="CTLENS SYNTHETIC",
        series_number=1,
    )
    del ds.ConvolutionKernel  # lives in CTReconstructionSequence for enhanced CT; keep a copy below too
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.InstanceNumber = 1
    ds.ContentQualification = "PRODUCT"
    ds.NumberOfFrames = n
    ds.ConvolutionKernel = kernel

    measures = Dataset()
    measures.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    measures.SliceThickness = _ds(abs(spacing[0]))
    measures.SpacingBetweenSlices = _ds(abs(spacing[0]))
    plane_orient = Dataset()
    plane_orient.ImageOrientationPatient = [_ds(v) for v in iop]
    transform = Dataset()
    transform.RescaleIntercept = _ds(intercept)
    transform.RescaleSlope = _ds(slope)
    transform.RescaleType = "HU"
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    recon = Dataset()
    recon.ConvolutionKernel = kernel
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [plane_orient]
    shared.PixelValueTransformationSequence = [transform]
    shared.CTImageFrameTypeSequence = [frame_type]
    shared.CTReconstructionSequence = [recon]
    ds.SharedFunctionalGroupsSequence = [shared]

    stack_pos = {int(idx): rank + 1 for rank, idx in enumerate(ascending)}
    per_frame = []
    for idx in frames:
        pos = Dataset()
        pos.ImagePositionPatient = [_ds(v) for v in ipps[idx]]
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = stack_pos[int(idx)]
        content.DimensionIndexValues = [1, stack_pos[int(idx)]]
        item = Dataset()
        item.PlanePositionSequence = [pos]
        item.FrameContentSequence = [content]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame

    frames_raw = np.ascontiguousarray(raw[frames])
    _set_pixels(ds, frames_raw, transfer_syntax)
    ds.save_as(path, enforce_file_format=True)
    if verify:
        _verify(path, frames_raw if n > 1 else frames_raw[0])

    ipps_sorted = ipps[ascending]
    sp, org, direction, shifts = _truth_geometry(ipps_sorted, iop, pixel_spacing, False)
    raw_sorted = raw[ascending]
    return SeriesTruth(
        hu=_truth_hu(raw_sorted, slope, intercept, None),
        spacing=sp,
        origin=org,
        direction=direction,
        paths=[path],
        sop_uids=[sop_uid],
        series_uid=series_uid,
        study_uid=study_uid,
        description=description,
        kernel=kernel,
        ipps=ipps_sorted,
        instance_numbers=[1] * n,
        raw=raw_sorted,
        slope=float(slope),
        intercept=float(intercept),
        transfer_syntax=transfer_syntax,
        inplane_shift=shifts,
        slice_thickness=_r6(abs(spacing[0])),
    )


# --------------------------------------------------------------------------- broken and odd files


def write_non_dicom(path: str | os.PathLike[str], content: bytes | str | None = None, *, seed: int = 0) -> Path:
    """Write a file that is not DICOM: ``content`` if given, else 4 KiB of seeded random bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        content = np.random.default_rng(seed).integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def write_dicomdir_like(path: str | os.PathLike[str]) -> Path:
    """Write a DICOM file with no image (Media Storage Directory SOP class, like a DICOMDIR)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = _uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.FileSetID = "SYNTHETIC"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = []
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path.write_bytes(buf.getvalue())
    return path


def truncate(path: str | os.PathLike[str], keep_fraction: float) -> Path:
    """Cut ``path`` to ``keep_fraction`` of its bytes (in place). 0.9 of a small slice cuts the pixel data."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def write_raw_dataset(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, implicit: bool, little: bool
) -> Path:
    """Re-write an uncompressed factory file as a raw dataset: no preamble, no ``DICM``, no file meta (ACR-NEMA style).

    Big-endian output gets its pixel samples byte-swapped (pydicom writes stored pixel bytes as they are).
    """
    ds = pydicom.dcmread(src)
    samples = ds.pixel_array
    ds.preamble = None
    del ds.file_meta
    ds.PixelData = samples.astype(samples.dtype.newbyteorder("<" if little else ">")).tobytes()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(dst, ds, implicit_vr=implicit, little_endian=little)
    return dst


# --------------------------------------------------------------------------- archives


def make_zip(folder: str | os.PathLike[str], zip_path: str | os.PathLike[str], arcname_prefix: str = "") -> Path:
    """Zip every file under ``folder`` (recursively, deflated) with paths relative to it, under ``arcname_prefix``."""
    folder, zip_path = Path(folder), Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            if file.resolve() == zip_path.resolve():
                continue
            zf.write(file, arcname_prefix + file.relative_to(folder).as_posix())
    return zip_path


def make_evil_zip(
    zip_path: str | os.PathLike[str],
    kind: str = "traversal",
    *,
    bomb_bytes: int = 200 * 2**20,
    total_bytes: int = 3 * 2**20,
    member_name: str | None = None,
) -> list[str]:
    """Write a hostile zip and return the names of its hostile members.

    kinds:
        ``"traversal"``: a harmless ``series/readme.txt`` and a member ``../evil.dcm`` (or ``member_name``);
        ``"absolute"``: a member with an absolute path (``/tmp/ctlens-evil-<random>.dcm`` or ``member_name``);
        ``"bomb"``: one member of ``bomb_bytes`` zeros, deflated (about 1000:1), streamed so nothing that
        size is ever held in memory or on disk;
        ``"oversize"``: three incompressible members of ``total_bytes / 3`` each (ratio ~1): only a total
        size limit (``CTLENS_MAX_ARCHIVE_BYTES``) can refuse it.
    """
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    evil: list[str] = []
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if kind == "traversal":
            zf.writestr("series/readme.txt", "harmless")
            name = member_name or "../evil.dcm"
            zf.writestr(zipfile.ZipInfo(name), b"not really dicom")
            evil.append(name)
        elif kind == "absolute":
            name = member_name or f"/tmp/ctlens-evil-{os.urandom(6).hex()}.dcm"
            zf.writestr("series/readme.txt", "harmless")
            zf.writestr(zipfile.ZipInfo(name), b"not really dicom")
            evil.append(name)
        elif kind == "bomb":
            info = zipfile.ZipInfo(member_name or "bomb.dcm")
            info.compress_type = zipfile.ZIP_DEFLATED
            chunk = bytes(2**20)
            with zf.open(info, "w", force_zip64=True) as out:
                left = bomb_bytes
                while left > 0:
                    out.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
            evil.append(info.filename)
        elif kind == "oversize":
            rng = np.random.default_rng(0)
            each = max(1, total_bytes // 3)
            for i in range(3):
                name = f"big/part{i}.dcm"
                zf.writestr(name, rng.integers(0, 256, size=each, dtype=np.uint8).tobytes())
                evil.append(name)
        else:
            raise ValueError(f"unknown evil zip kind {kind!r}")
    return evil
