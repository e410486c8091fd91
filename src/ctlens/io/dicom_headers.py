"""Read DICOM headers (no pixels) into one :class:`SliceRef` per image plane.

Single-frame files give one ref each; enhanced multi-frame files give one per
frame, with geometry from the functional groups; Siemens mosaics give one per
tile (:mod:`ctlens.io.mosaic`). MR planes carry their diffusion b-value and
direction in ``extra`` (:mod:`ctlens.io.diffusion`). Files that are not DICOM, or
whose header cannot be parsed, are returned as skipped with the reason.

Each header is read once: :func:`ctlens.io.dicom_parse.parse_file` in one pass (the values every rule needs decoded
as plain values, ``SliceRef.value``; where the pixel data lie, ``SliceRef.pixel_offset``), else pydicom for files
it leaves (the same values then come from pydicom's data set, converted once each, as :func:`plain` gives them).

Example:
    >>> refs, skipped = read_slice_refs([])
    >>> refs, skipped
    ([], [])
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import VR

from ctlens.core.errors import CorruptFileError, CTLensError
from ctlens.io.dicom_deflate import check_deflated
from ctlens.io.dicom_geometry import plane_problem
from ctlens.io.dicom_magic import is_raw_dataset, read_head
from ctlens.io.dicom_parse import DEFER_BYTES, parse_file, plain
from ctlens.io.dicom_source import CandidateFile
from ctlens.io.diffusion import diffusion_facts, diffusion_key
from ctlens.io.enhanced_frames import volume_dimension_key
from ctlens.io.mosaic import MosaicLayout, csa_image_header, mosaic_layout

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_NON_IMAGE_HINTS = ("RTSTRUCT", "RTPLAN", "SR", "PR", "KO", "SEG", "REG")


class UnreadableValueError(CorruptFileError):
    """A header value pydicom cannot convert (:meth:`SliceRef.value`); while headers are read, the file is skipped."""


@dataclass
class SliceRef:
    """One image plane: where its pixels are and the header facts needed to place it."""

    file: CandidateFile
    frame: int | None
    header: Dataset
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    slope: float
    intercept: float
    sop_uid: str
    instance_number: int = 0
    acquisition: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    mosaic: MosaicLayout | None = None
    """The file's mosaic layout when this plane is one tile of a Siemens mosaic (``tile`` says which)."""
    tile: int | None = None
    facts: dict[str, Any] = field(default_factory=dict, repr=False)
    """The file's header values read so far, by keyword, as :func:`ctlens.io.dicom_parse.plain` gives them (one
    dict shared by every plane of the file); :meth:`value` fills it."""
    pixel_offset: int | None = None
    """File offset of the pixel data value when the one-pass parser read the header (None: ask pydicom)."""
    pixel_length: int | None = None
    """The pixel data element's length there (``0xFFFFFFFF``: encapsulated)."""

    def value(self, keyword: str) -> Any:
        """The header's value of ``keyword`` as a plain value (text stripped, several as a tuple, None if absent).

        Read once per file: the one-pass parser decodes the usual ones while parsing, anything else is converted
        by pydicom on the first call and kept.

        Example:
            >>> ds = Dataset(); ds.ImageType = ["ORIGINAL", "PRIMARY"]; ds.SliceThickness = "1.50"
            >>> ref = SliceRef(None, None, ds, np.zeros(3), np.zeros(6), (1, 1), 2, 2, 1, 0, "")
            >>> ref.value("ImageType"), ref.value("SliceThickness"), ref.value("EchoTime")
            (('ORIGINAL', 'PRIMARY'), '1.50', None)
        """
        facts = self.facts
        if keyword in facts:
            return facts[keyword]
        try:
            value = plain(self.header.get(keyword))
        except Exception as exc:  # noqa: BLE001 - pydicom cannot convert the value (odd length, bad number...)
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            display = getattr(self.file, "display", None)
            raise UnreadableValueError(f"{keyword} cannot be read ({reason})", path=display) from None
        facts[keyword] = value
        return value

    def optional(self, keyword: str) -> Any:
        """:meth:`value`, or None where pydicom cannot convert it: for values that describe and decide nothing (meta).

        Example:
            >>> SliceRef(None, None, Dataset(), np.zeros(3), np.zeros(6), (1, 1), 2, 2, 1, 0, "").optional("KVP")
        """
        try:
            return self.value(keyword)
        except UnreadableValueError:
            return None

    @functools.cached_property
    def modality(self) -> str:
        """The header's Modality ("" if absent), read once."""
        return str(self.value("Modality") or "").upper()

    @functools.cached_property
    def transfer_syntax(self) -> str:
        """The file's TransferSyntaxUID ("" if none), read once."""
        if "TransferSyntaxUID" not in self.facts:
            meta = getattr(self.header, "file_meta", None)
            self.facts["TransferSyntaxUID"] = str(meta.get("TransferSyntaxUID", "") if meta is not None else "")
        return str(self.facts["TransferSyntaxUID"] or "")


def _group(ds: Dataset, frame_group: Dataset | None, seq: str) -> Dataset | None:
    """Functional-group item ``seq`` from the per-frame group, else from the shared one."""
    shared = getattr(ds, "SharedFunctionalGroupsSequence", None)
    for holder in (frame_group, shared[0] if shared else None):
        if holder is not None and seq in holder and holder[seq].value:
            return holder[seq].value[0]
    return None


@dataclass
class _Header:
    """One file's header as read: the data set, the values read so far, where its pixel data lie."""

    dataset: Dataset
    facts: dict[str, Any]
    pixel_offset: int | None = None
    pixel_length: int | None = None


def _read(candidate: CandidateFile) -> _Header | str:
    """The file's header in one pass (:mod:`ctlens.io.dicom_parse`), else through pydicom; or why it has none."""
    parsed = parse_file(candidate.path)
    if parsed is not None:
        return _Header(parsed.dataset, parsed.facts, parsed.pixel_offset, parsed.pixel_length)  # VRs all defined
    header = _read_header(candidate)
    return header if isinstance(header, str) else _Header(_known_vrs(header), {})


_KNOWN_VRS = frozenset(str(vr) for vr in VR)


def _known_vrs(ds: Dataset) -> Dataset:
    """``ds`` with its top-level elements of a VR that DICOM does not define read as UN (hence by the dictionary's
    VR): pydicom raises NotImplementedError for them at first access, deep inside any rule that reads one."""
    for tag in list(ds.keys()):
        elem = ds.get_item(tag, keep_deferred=True)  # as stored: nothing converted or read
        if isinstance(elem, RawDataElement) and elem.VR is not None and elem.VR not in _KNOWN_VRS:
            try:  # pydicom converts a private element at once (its creator's dictionary VR): that may fail
                ds[tag] = elem._replace(VR=VR.UN)
            except Exception:  # noqa: BLE001 - e.g. an odd length for a US: readable neither way, nothing reads it
                del ds[tag]
    return ds


def _read_header(candidate: CandidateFile) -> Dataset | str:
    try:  # a deflated data set is measured within the decompression budget before pydicom inflates it
        check_deflated(candidate.path, candidate.display)  # a bomb raises BudgetExceeded: the input is refused
    except CorruptFileError:
        return "unreadable DICOM header (corrupt deflated data set)"
    try:
        return pydicom.dcmread(candidate.path, defer_size=DEFER_BYTES)
    except InvalidDicomError:
        if is_raw_dataset(read_head(candidate.path)):  # a bare data set without the 128-byte preamble and DICM
            try:
                return with_file_meta(pydicom.dcmread(candidate.path, defer_size=DEFER_BYTES, force=True))
            except Exception as exc:  # noqa: BLE001 - any parser failure means "not readable"
                return f"unreadable DICOM header ({type(exc).__name__}: {exc})"
        return "not a DICOM file"
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt files raise many types
        return f"unreadable DICOM header ({type(exc).__name__}: {exc})"


def with_file_meta(ds: Dataset) -> Dataset:
    """Give a bare data set (no preamble, often no file meta) the file meta of a PS3.10 file, in place.

    Transfer syntax: the encoding it was read in (pixel data are then native little- or big-endian samples);
    media storage SOP class and instance: the data set's own. Fields already present are kept.

    Example:
        >>> import io
        >>> bare = Dataset(); bare.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"; bare.SOPInstanceUID = "1.2.3"
        >>> buf = io.BytesIO(); pydicom.dcmwrite(buf, bare, implicit_vr=True, little_endian=True)
        >>> meta = with_file_meta(pydicom.dcmread(io.BytesIO(buf.getvalue()), force=True)).file_meta
        >>> meta.TransferSyntaxUID.name, meta.MediaStorageSOPInstanceUID
        ('Implicit VR Little Endian', '1.2.3')
    """
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if not str(meta.get("TransferSyntaxUID", "")):
        implicit, little = ds.original_encoding
        if implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    for meta_key, key in (("MediaStorageSOPClassUID", "SOPClassUID"), ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        if meta_key not in meta and key in ds:
            setattr(meta, meta_key, ds[key].value)
    ds.file_meta = meta
    return ds


def _floats(value: Any, n: int) -> np.ndarray | None:
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) else None


def _number(value: object, default: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


MAX_DIMENSION = 65535
"""Largest Rows / Columns a DICOM image can declare (both are US: PS3.3 C.7.6.3.1)."""


def image_dimension(value: Any, keyword: str, display: str) -> int:
    """``Rows`` / ``Columns`` as an integer in 1..65535, else :class:`CorruptFileError` naming ``display``.

    Accepts what headers hold in practice (an int, an integer string; a single value), nothing else.

    Example:
        >>> image_dimension(512, "Rows", "a.dcm"), image_dimension("64", "Columns", "a.dcm")
        (512, 64)
        >>> image_dimension(-1, "Rows", "a.dcm")
        Traceback (most recent call last):
        ...
        ctlens.core.errors.CorruptFileError: a.dcm: Rows is -1, not an image size (1 to 65535)
    """
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+").isdigit() and len(value.strip()) <= 12:
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_DIMENSION:
        shown = repr(value) if not isinstance(value, int) else str(value)
        raise CorruptFileError(f"{keyword} is {shown[:40]}, not an image size (1 to {MAX_DIMENSION})", path=display)
    return number


def _size_problem(header: _Header, display: str) -> str | None:
    """Why the file's Rows / Columns are no image size (:func:`image_dimension`), or None."""
    try:
        for keyword in ("Rows", "Columns"):
            image_dimension(_get(header, keyword), keyword, display)
    except CorruptFileError as exc:
        return exc.reason
    return None


def _get(header: _Header, keyword: str) -> Any:
    """``SliceRef.value`` before there is a ref: the file's plain value of ``keyword``, converted once."""
    facts = header.facts
    if keyword in facts:
        return facts[keyword]
    value = facts[keyword] = plain(header.dataset.get(keyword))
    return value


def _plane_ref(
    candidate: CandidateFile,
    header: _Header,
    frame: int | None,
    pos: np.ndarray,
    iop: np.ndarray,
    spacing: np.ndarray | None,
    rescale: Dataset | None = None,
) -> SliceRef:
    """One plane; ``rescale`` holds RescaleSlope/Intercept (a functional-group item; None: the file's own)."""
    sop = str(_get(header, "SOPInstanceUID") or "")
    if rescale is None:
        slope, intercept = _get(header, "RescaleSlope"), _get(header, "RescaleIntercept")
    else:
        slope, intercept = getattr(rescale, "RescaleSlope", None), getattr(rescale, "RescaleIntercept", None)
    return SliceRef(
        file=candidate,
        frame=frame,
        header=header.dataset,
        position=pos,
        orientation=iop,
        pixel_spacing=tuple(spacing) if spacing is not None else (1.0, 1.0),
        rows=image_dimension(_get(header, "Rows"), "Rows", candidate.display),
        columns=image_dimension(_get(header, "Columns"), "Columns", candidate.display),
        slope=_number(slope, 1.0) or 1.0,
        intercept=_number(intercept, 0.0),
        sop_uid=sop if frame is None else f"{sop}#{frame + 1}",
        instance_number=int(_number(_get(header, "InstanceNumber"), 0)) if frame is None else frame + 1,
        acquisition=str(_get(header, "AcquisitionNumber") or ""),
        facts=header.facts,
        pixel_offset=header.pixel_offset if frame is None else None,
        pixel_length=header.pixel_length if frame is None else None,
    )


def _with_diffusion(ref: SliceRef, ds: Dataset, item: Dataset | None, csa: dict[str, Any] | None) -> SliceRef:
    """Add the plane's diffusion facts (MR only) and the key that tells diffusion volumes apart."""
    if ref.modality == "MR":
        facts = diffusion_facts(ds, item, csa)
        ref.extra.update(facts)
        if facts:
            ref.extra["DiffusionKey"] = diffusion_key(facts)
    return ref


def _single_frame_refs(candidate: CandidateFile, header: _Header) -> list[SliceRef] | str:
    ds = header.dataset
    pos = _floats(_get(header, "ImagePositionPatient"), 3)
    iop = _floats(_get(header, "ImageOrientationPatient"), 6)
    if _get(header, "Rows") is None or _get(header, "Columns") is None:
        return "no image (Rows/Columns missing)"
    problem = _size_problem(header, candidate.display)  # before the mosaic layout reads Rows / Columns
    if problem is not None:
        return problem
    if pos is None or iop is None:
        return "no ImagePositionPatient/ImageOrientationPatient (not a cross-sectional image)"
    spacing = _floats(_get(header, "PixelSpacing"), 2)
    problem = plane_problem(pos, iop, spacing)
    if problem is not None:
        return problem
    is_mr = str(_get(header, "Modality") or "").upper() == "MR"
    csa = csa_image_header(ds) if is_mr else None
    layout = mosaic_layout(ds, csa, pos, iop) if is_mr else None  # mosaics are Siemens MR (fMRI, diffusion)
    if isinstance(layout, str):
        return layout
    if layout is None:
        return [_with_diffusion(_plane_ref(candidate, header, None, pos, iop, spacing), ds, None, csa)]
    refs = []
    sop = str(_get(header, "SOPInstanceUID") or "")
    for k in range(layout.n):
        ref = _plane_ref(candidate, header, None, layout.positions[k], iop, spacing)
        ref.rows, ref.columns, ref.mosaic, ref.tile = layout.rows, layout.columns, layout, k
        ref.sop_uid = f"{sop}#{k + 1}"
        refs.append(_with_diffusion(ref, ds, None, csa))
    return refs


def _multi_frame_refs(candidate: CandidateFile, header: _Header) -> list[SliceRef] | str:
    ds = header.dataset
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    n_frames = int(_number(_get(header, "NumberOfFrames"), 1) or 1)
    if not per_frame or len(per_frame) != n_frames:
        return "multi-frame file without one PerFrameFunctionalGroupsSequence item per frame"
    problem = _size_problem(header, candidate.display)
    if problem is not None:
        return problem
    refs: list[SliceRef] = []
    for k, group in enumerate(per_frame):
        pos = _floats(getattr(_group(ds, group, "PlanePositionSequence"), "ImagePositionPatient", None), 3)
        iop = _floats(getattr(_group(ds, group, "PlaneOrientationSequence"), "ImageOrientationPatient", None), 6)
        if pos is None or iop is None:
            return f"frame {k + 1} has no plane position/orientation"
        spacing = _floats(getattr(_group(ds, group, "PixelMeasuresSequence"), "PixelSpacing", None), 2)
        problem = plane_problem(pos, iop, spacing)
        if problem is not None:
            return f"frame {k + 1}: {problem}"
        transform = _group(ds, group, "PixelValueTransformationSequence")
        ref = _plane_ref(candidate, header, k, pos, iop, spacing, transform if transform is not None else ds)
        ref.extra.update(_frame_facts(ds, group))
        volume_key = volume_dimension_key(ds, ref.extra.get("DimensionIndexValues"))
        if volume_key is not None:  # what tells this frame's volume apart when no named field does
            ref.extra["DimensionVolume"] = volume_key
        refs.append(_with_diffusion(ref, ds, _group(ds, group, "MRDiffusionSequence"), None))
    return refs


_FRAME_FACTS = (
    (
        "FrameContentSequence",
        (
            "FrameAcquisitionNumber",
            "TemporalPositionIndex",
            "FrameAcquisitionDateTime",
            "StackID",
            "DimensionIndexValues",
        ),
    ),
    ("MREchoSequence", ("EffectiveEchoTime",)),
    ("MRImageFrameTypeSequence", ("FrameType",)),
    ("CTImageFrameTypeSequence", ("FrameType",)),
)
"""Per-frame fields of enhanced files that tell stacks of one series apart (``ctlens.io.series_split``)."""


def _frame_facts(ds: Dataset, frame_group: Dataset) -> dict[str, Any]:
    """The :data:`_FRAME_FACTS` of one frame (per-frame group, else shared), as ``SliceRef.extra``."""
    facts: dict[str, Any] = {}
    for seq, keywords in _FRAME_FACTS:
        item = _group(ds, frame_group, seq)
        for keyword in keywords:
            value = None if item is None else item.get(keyword)
            if value not in (None, "") and keyword not in facts:
                facts[keyword] = value
    return facts


_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def slice_refs_of(candidate: CandidateFile, ds: Dataset | _Header) -> list[SliceRef] | str:
    """The image planes of one parsed header (a pydicom data set, or as read here), or the reason it holds none."""
    header = ds if isinstance(ds, _Header) else _Header(ds, {})
    ds = header.dataset
    if "MediaStorageSOPClassUID" not in header.facts:
        meta = getattr(ds, "file_meta", None)
        header.facts["MediaStorageSOPClassUID"] = str(meta.get("MediaStorageSOPClassUID", "")) if meta else ""
    if header.facts["MediaStorageSOPClassUID"] == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return "DICOMDIR (an index, not an image)"
    modality = str(_get(header, "Modality") or "")
    has_rows = _get(header, "Rows") is not None or "Rows" in ds
    if modality in _NON_IMAGE_HINTS and not has_rows:
        return f"non-image object ({modality})"
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):  # with Rows or not: a slice without its image
        return "no pixel data"  # skipped like a truncated file (the series reads on, the gap is reported)
    if int(_number(_get(header, "NumberOfFrames"), 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return _multi_frame_refs(candidate, header)
    return _single_frame_refs(candidate, header)


def read_slice_refs(
    candidates: list[CandidateFile], workers: int = 4
) -> tuple[list[SliceRef], list[tuple[CandidateFile, str]]]:
    """Read every candidate's header once; return (slice refs, [(skipped file, reason)]).

    Headers are parsed in this thread: parsing is Python code holding the GIL, so threads only added switching
    (measured: ``benchmarks/bench_io.py``); ``workers`` is accepted for the callers' sake.
    """
    refs: list[SliceRef] = []
    skipped: list[tuple[CandidateFile, str]] = []
    for candidate in candidates:
        header = _read(candidate)
        try:
            result = header if isinstance(header, str) else slice_refs_of(candidate, header)
        except UnreadableValueError as exc:
            result = f"unreadable DICOM header ({exc.reason})"
        except CTLensError:
            raise
        except Exception as exc:  # noqa: BLE001 - a value pydicom cannot convert (wrong length, bad number...)
            result = f"unreadable DICOM header ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        if isinstance(result, str):
            skipped.append((candidate, result))
        else:
            refs.extend(result)
    return refs, skipped


def dicom_folders(root: str | os.PathLike) -> list[Path]:
    """Folders below ``root`` that directly hold at least one readable DICOM file, sorted.

    Example:
        >>> import tempfile
        >>> dicom_folders(tempfile.mkdtemp())
        []
    """
    found: set[Path] = set()
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            path = Path(folder) / name
            if not isinstance(_read(CandidateFile(path, str(path))), str):
                found.add(Path(folder))
                break
    return sorted(found)
