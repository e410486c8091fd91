"""Read one DICOM series into a correct :class:`~ctlens.core.volume.Volume`.

Steps: collect candidate files (folders recursively, zips safely), parse headers,
group into series and pick one, order slices by position along the slice normal,
decode pixels to HU in parallel, then fix geometry:

* gantry tilt: ``tilt="correct"`` (default) shifts each slice within its plane so
  the voxel grid becomes orthogonal (dcm2niix's correction); ``"refuse"`` raises
  :class:`~ctlens.core.errors.GantryTiltError`;
* uneven spacing or missing slices: ``uneven="resample"`` (default) interpolates
  linearly along the normal onto an equidistant grid from the first to the last
  slice (so the volume spans the true distance; the warning says from which steps
  to which); ``"keep"`` keeps the acquired slices at the usual (median) step and
  lists their true positions in ``meta["slice_positions_mm"]`` (``"warn"`` is the
  former name of ``"keep"``); ``"error"`` raises
  :class:`~ctlens.core.errors.UnevenSpacingError`. Positions that only jitter (less
  than 1 % of the step) are even: nothing is resampled.
* several acquisitions (echoes, image types) at the same positions in one series:
  each is its own entry of :func:`list_series`; the default is the largest (first)
  one, and a warning says which others there are (:mod:`ctlens.io.series_split`).
* several volumes of one image (time points, diffusion directions; outside CT also
  numbered acquisitions): one entry with ``n_volumes``; ``volume=k`` (0-based) reads
  volume ``k``, the default is volume 0 with a warning; :func:`read_dicom_volumes`
  reads them all (``ctlens.io.load_volumes``). ``meta`` holds ``n_volumes``,
  ``volume_index`` and, for diffusion, ``diffusion_bvalue`` / ``diffusion_gradient``
  (LPS) of the volume read and ``bvals`` / ``bvecs`` of every volume.
* padding: ``PixelPaddingValue`` pixels become air in CT only; ``meta["pixel_padding_value"]``
  names the value in every modality.

``meta`` is de-identified here, once (:func:`ctlens.io.uid_hash.deidentify_meta`: UIDs hashed, no identifying
keys, no free-text descriptions); nothing downstream re-runs it.

Example:
    >>> import ctlens  # doctest: +SKIP
    >>> vol = ctlens.io.dicom_reader.read_dicom("series_folder/")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ctlens.core.errors import (
    CorruptFileError,
    CTLensError,
    GantryTiltError,
    InputNotFoundError,
    SeriesSelectionError,
    UnevenSpacingError,
)
from ctlens.core.volume import Volume
from ctlens.io.dicom_geometry import StackGeometry, even_grid_step, single_slice_step, stack_geometry
from ctlens.io.dicom_headers import SliceRef, read_slice_refs
from ctlens.io.dicom_left_out import left_out_note, stray_note
from ctlens.io.dicom_pixels import AIR_HU, decode_hu
from ctlens.io.dicom_series import IMPLICIT_PART, SeriesInfo, group_series, select_series
from ctlens.io.dicom_source import DicomSource, PathInput
from ctlens.io.suffixes import DOCUMENT_SUFFIXES
from ctlens.io.uid_hash import deidentify_meta, hash_uid

log = logging.getLogger("ctlens.io")

TiltPolicy = Literal["correct", "refuse"]
UnevenPolicy = Literal["resample", "keep", "warn", "error"]
UNEVEN_POLICIES = ("resample", "keep", "warn", "error")
"""Every ``uneven=`` value; ``"warn"`` is the former name of ``"keep"``."""

_META_TEXT = {
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "model",
    "BodyPartExamined": "body_part",
    "PatientPosition": "patient_position",
    "ContrastBolusAgent": "contrast_agent",
}
_META_NUMBER = {
    "SliceThickness": "slice_thickness",
    "KVP": "kvp",
    "XRayTubeCurrent": "tube_current_ma",
    "ExposureTime": "exposure_time_ms",
    "GantryDetectorTilt": "gantry_detector_tilt",
    "SeriesNumber": "series_number",
}


def _scan(source: DicomSource, workers: int | None) -> tuple[list[SeriesInfo], list[str]]:
    refs, skipped = read_slice_refs(source.files, workers=workers or 1)
    not_dicom = [c.path.name for c, why in skipped if why == "not a DICOM file"]
    notes = [f"skipped {c.path.name}: {why}" for c, why in skipped if why != "not a DICOM file"]
    suspicious = [name for name in not_dicom if not name.lower().endswith(DOCUMENT_SUFFIXES)]
    if suspicious:  # a file that could have been an image: say so; README/JSON/XML files are just noted
        notes.append(f"skipped {len(suspicious)} file(s) that are not DICOM: {', '.join(suspicious[:5])}")
    if not_dicom:
        examples = ", ".join(not_dicom[:3]) + (", ..." if len(not_dicom) > 3 else "")
        log.info("%s: ignored %d non-DICOM file(s) (%s)", source.name, len(not_dicom), examples)
    if not refs and len(source.files) == 1 and skipped:
        raise CorruptFileError(skipped[0][1], path=skipped[0][0].display, hint="give a DICOM file or series")
    if not refs:
        reasons = "; ".join(notes[:5]) + (" ..." if len(notes) > 5 else "")
        if not_dicom:
            reasons = "; ".join(filter(None, [reasons, f"{len(not_dicom)} not DICOM: {examples}"]))
        raise InputNotFoundError(
            f"no DICOM images found in {len(source.files)} file(s)" + (f" ({reasons})" if reasons else ""),
            path=source.name,
            hint="give a folder, zip or files holding a DICOM series",
        )
    infos, dropped = group_series(refs)  # a series of planes of mixed sizes is split: see dicom_left_out
    return infos, [*notes, *dropped]


def list_series(source: PathInput, workers: int | None = None) -> list[SeriesInfo]:
    """List the image series in a folder, zip, file or list of files (scouts dropped, largest first).

    Example:
        >>> for s in list_series("series_folder/"):  # doctest: +SKIP
        ...     print(s.label())
    """
    with DicomSource(source) as src:
        infos, notes = _scan(src, workers)
    for note in notes:
        log.debug(note)
    return infos


def _volume_meta(info: SeriesInfo, k: int, refs: list[SliceRef]) -> dict[str, Any]:
    """``n_volumes``, ``volume_index`` (and label), padding and diffusion facts of volume ``k`` of ``info``."""
    meta: dict[str, Any] = {"n_volumes": info.n_volumes, "volume_index": k}
    if info.volume_labels and info.volume_labels[k]:
        meta["volume_label"] = info.volume_labels[k]
    pad = refs[0].value("PixelPaddingValue")  # unreadable: one error naming the file (it changes the HU)
    if isinstance(pad, int) and not isinstance(pad, bool):
        meta["pixel_padding_value"] = int(pad)
        meta["padding_as_air"] = refs[0].modality == "CT"
    bvals = [r[0].extra.get("DiffusionBValue") for r in (info.volumes or [info.refs])]
    if any(b is not None for b in bvals):
        vectors = [r[0].extra.get("DiffusionGradientOrientation") for r in (info.volumes or [info.refs])]
        meta["bvals"] = [float(b) if b is not None else 0.0 for b in bvals]
        meta["bvecs"] = [[float(x) for x in v] if v is not None else [0.0, 0.0, 0.0] for v in vectors]
        meta["diffusion_bvalue"] = meta["bvals"][k]
        meta["diffusion_gradient"] = meta["bvecs"][k]
    return meta


def _meta(info: SeriesInfo, refs: list[SliceRef], geom: StackGeometry, n_files: int) -> dict:
    first, image_type = refs[0], refs[0].optional("ImageType")
    meta: dict = {
        "source_format": "dicom",
        "series_uid": hash_uid(info.series_uid),
        "study_uid": hash_uid(str(first.optional("StudyInstanceUID") or "")),
        "frame_of_reference_uid": hash_uid(str(first.optional("FrameOfReferenceUID") or "")),
        "kernel": info.kernel,
        "image_type": [str(v) for v in (image_type if isinstance(image_type, tuple) else [image_type or ""]) if v],
        "transfer_syntax": info.transfer_syntax,
        "n_source_files": n_files,
        "sop_uids": [hash_uid(r.sop_uid) for r in refs],
        "series_key": info.series_id,
        "slice_positions_mm": [float(x) for x in geom.offsets],
        "gantry_tilt_deg": round(geom.tilt_deg, 4),
        "tilt_corrected": False,
        "spacing_uneven": geom.uneven,
        "missing_slices": geom.missing_slices,
        "warnings": list(geom.warnings),
    }
    for keyword, key in _META_TEXT.items():
        text = first.optional(keyword)
        if text not in (None, "") and not isinstance(text, bytes):
            meta[key] = str(text).strip()
    for keyword, key in _META_NUMBER.items():
        try:
            value = first.optional(keyword)
            if value not in (None, ""):
                number = float(value)
                if math.isfinite(number):  # NaN / inf would make the meta invalid JSON; thickness is checked later
                    meta[key] = number
        except (TypeError, ValueError, OverflowError):
            pass
    return meta


def _translate(plane: np.ndarray, offset: int, axis: int) -> np.ndarray:
    """Move ``plane`` by a whole number of pixels along ``axis``; uncovered pixels become air."""
    n = plane.shape[axis]
    if abs(offset) >= n:
        return np.full_like(plane, AIR_HU)
    out = np.empty_like(plane)
    src, dst, edge = [slice(None)] * 2, [slice(None)] * 2, [slice(None)] * 2
    src[axis] = slice(max(0, -offset), n - max(0, offset))
    dst[axis] = slice(max(0, offset), n - max(0, -offset))
    out[tuple(dst)] = plane[tuple(src)]
    edge[axis] = slice(0, offset) if offset > 0 else slice(n + offset, n)  # the uncovered rows / columns
    out[tuple(edge)] = AIR_HU
    return out


def _shift_plane(plane: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``out[y, x] = plane[y - sy, x - sx]`` with linear interpolation, air outside (separable, fast)."""
    out = plane.astype(np.float32)
    for axis, amount in enumerate(shift):
        if abs(amount) < 1e-6:
            continue
        whole = int(np.floor(amount))
        frac = np.float32(amount - whole)
        moved = _translate(out, whole, axis)
        moved *= 1 - frac  # in place: the same float32 products as a new array, fewer passes over memory
        if frac:
            other = _translate(out, whole + 1, axis)
            other *= frac
            moved += other
        out = moved
    return out


def _correct_tilt(hu: np.ndarray, geom: StackGeometry, dy: float, dx: float) -> np.ndarray:
    """Shift every slice within its plane so its origin sits on the first slice's normal line."""
    out = np.empty_like(hu)
    for k in range(hu.shape[0]):
        shift = (geom.shift_column[k] / dy, geom.shift_row[k] / dx)
        if abs(shift[0]) < 1e-6 and abs(shift[1]) < 1e-6:
            out[k] = hu[k]
            continue
        moved = _shift_plane(hu[k], shift)
        out[k] = np.rint(moved) if np.issubdtype(hu.dtype, np.integer) else moved
    return out


def resample_even_slices(slices: Iterator[np.ndarray], offsets: np.ndarray, step: float) -> Iterator[np.ndarray]:
    """Linear interpolation along z onto ``0, step, 2 step, ...``; exact at original positions.

    Reads the sorted ``slices`` in order and keeps only the two around the output position, so it works on a
    stream as well as on an array (integer input stays integer, rounded).

    Example:
        >>> hu = np.array([[[0]], [[10]], [[40]]], np.int16)
        >>> [int(s[0, 0]) for s in resample_even_slices(iter(hu), np.array([0.0, 1.0, 3.0]), 1.0)]
        [0, 10, 25, 40]
    """
    grid = np.arange(resampled_count(offsets, step)) * step
    upper = np.clip(np.searchsorted(offsets, grid, side="left"), 1, len(offsets) - 1)
    window: dict[int, np.ndarray] = {}
    read = 0
    for k, z in enumerate(grid):
        hi = int(upper[k])
        lo = hi - 1
        while read <= hi:
            window[read] = next(slices)
            read += 1
        for old in [i for i in window if i < lo]:
            del window[old]
        for exact in (lo, hi):
            if abs(offsets[exact] - z) < 1e-4:
                yield window[exact]
                break
        else:
            w = (z - offsets[lo]) / (offsets[hi] - offsets[lo])  # a float64 weight: the mix is float64
            mixed = window[lo].astype(np.float64)
            mixed *= 1 - w
            upper_part = window[hi].astype(np.float64)
            upper_part *= w
            mixed += upper_part
            integer = np.issubdtype(window[lo].dtype, np.integer)
            yield np.rint(mixed, out=mixed).astype(window[lo].dtype) if integer else mixed


def _resample_even(hu: np.ndarray, offsets: np.ndarray, step: float) -> tuple[np.ndarray, int]:
    """:func:`resample_even_slices` of a whole array, into one preallocated output."""
    n_out = resampled_count(offsets, step)
    out = np.empty((n_out,) + hu.shape[1:], dtype=hu.dtype)
    for k, plane in enumerate(resample_even_slices(iter(hu), offsets, step)):
        out[k] = plane
    return out, n_out


def resampled_count(offsets: np.ndarray, step: float) -> int:
    """Slices on the equidistant grid ``0, step, 2 step, ...`` that covers ``offsets`` (``uneven="resample"``).

    Example:
        >>> resampled_count(np.array([0.0, 2.5, 7.5]), 2.5)
        4
    """
    return int(np.floor(offsets[-1] / step + 1e-6)) + 1


@dataclass
class SeriesPlan:
    """Everything about a series read that needs headers only: the series, its slices in order, geometry, meta.

    ``n_slices`` is the number of output slices (after ``uneven="resample"``); ``spacing`` and ``direction``
    are the output Volume's (``spacing[0]`` is the resampling grid's step when ``resample``).
    :func:`read_dicom` decodes all slices at once, ``ctlens.io.dicom_stream`` one by one.
    """

    info: SeriesInfo
    refs: list[SliceRef]
    geom: StackGeometry
    meta: dict[str, Any]
    resample: bool
    n_slices: int
    spacing: tuple[float, float, float]
    direction: np.ndarray

    def volume(self, array: np.ndarray) -> Volume:
        """The output Volume around ``array`` (decoded, corrected slices, or a placeholder of the same shape)."""
        return Volume(
            array,
            spacing=self.spacing,
            origin=tuple(self.geom.origin),
            direction=self.direction,
            modality=self.info.modality,
            meta=self.meta,
        )


def plan_series(
    src: DicomSource,
    series: int | str | None,
    *,
    tilt: TiltPolicy = "correct",
    uneven: UnevenPolicy = "resample",
    workers: int | None = None,
    volume: int | None = None,
) -> SeriesPlan:
    """Scan headers, choose and order the series (and volume), apply the tilt / uneven checks, build the meta.

    Example:
        >>> with DicomSource("series_folder/") as src:  # doctest: +SKIP
        ...     plan = plan_series(src, None)
    """
    if uneven not in UNEVEN_POLICIES:
        raise CTLensError(
            f"uneven={uneven!r} is not a policy for uneven slice spacing",
            path=src.name,
            hint="use " + ", ".join(repr(p) for p in UNEVEN_POLICIES),
        )
    infos, notes = _scan(src, workers)
    info, why = select_series(infos, series, src.name)
    return plan_entry(src.name, infos, info, why, notes, tilt=tilt, uneven=uneven, volume=volume)


def _volume_index(name: str, info: SeriesInfo, volume: int | None, notes: list[str]) -> int:
    """The 0-based volume to read (``volume``, else 0 with a note when the entry holds several)."""
    if volume is None:
        if info.n_volumes > 1:
            notes.append(
                f"series {info.label()} holds {info.n_volumes} volumes at the same positions (time points, "
                "diffusion directions...): read volume 0; pass volume=k (0-based) for another, or use "
                "ctlens.io.load_volumes for all"
            )
        return 0
    if isinstance(volume, bool) or not isinstance(volume, int) or not 0 <= volume < info.n_volumes:
        raise SeriesSelectionError(
            f"volume={volume!r} is not a volume of series {info.label()}, which holds {info.n_volumes}",
            path=name,
            hint=f"pass volume=0 .. {info.n_volumes - 1}",
        )
    return volume


def plan_entry(
    name: str,
    infos: list[SeriesInfo],
    info: SeriesInfo,
    why: str,
    notes: list[str],
    *,
    tilt: TiltPolicy = "correct",
    uneven: UnevenPolicy = "resample",
    volume: int | None = None,
) -> SeriesPlan:
    """:func:`plan_series` for an entry already chosen (``why``: the reason) among ``infos`` of input ``name``."""
    notes = list(notes)
    if len(infos) > 1:
        log.info("%s: %s", name, why)
    if IMPLICIT_PART in why:  # a part of a split series chosen for the caller: say which, and how to pick another
        notes.append(f"several acquisitions (or echoes, time points) at the same positions in one series: {why}")
    notes += [note for note in (left_out_note(infos, info), stray_note(infos, info)) if note]
    k = _volume_index(name, info, volume, notes)
    chosen = info.volume_refs(k)
    geom = stack_geometry([r.position for r in chosen], chosen[0].orientation, name)
    refs = [chosen[i] for i in geom.order]
    if geom.tilted and tilt == "refuse":
        raise GantryTiltError(
            f"series {info.label()} was acquired with a gantry tilt of {geom.tilt_deg:.2f} degrees: "
            "its slices are sheared and cannot be stacked on an orthogonal grid without resampling",
            path=name,
            hint="load with tilt='correct' to resample onto an orthogonal grid",
        )
    if geom.uneven and uneven == "error":
        raise UnevenSpacingError(
            f"series {info.label()}: {geom.warnings[0]}",
            path=name,
            hint="load with uneven='resample' for an equidistant grid",
        )
    dy, dx = (float(v) for v in refs[0].pixel_spacing)
    meta = _meta(info, refs, geom, info.n_files)
    meta.update(_volume_meta(info, k, refs))
    meta["series_selection"] = why
    meta["source_sop_uids"] = list(meta["sop_uids"])  # every plane read, in order (also after resampling)
    if info.part:
        meta["series_part"] = info.part
    meta["warnings"] = [*meta["warnings"], *notes]
    if geom.tilted:
        meta["tilt_corrected"] = True
        meta["warnings"].append(
            f"gantry tilt of {geom.tilt_deg:.2f} degrees corrected by shifting slices in-plane (linear interpolation)"
        )
    resample = bool(geom.uneven and uneven == "resample")
    n_slices = len(refs)
    step, why_not = (geom.step, None) if len(refs) > 1 else single_slice_step(refs[0].value("SliceThickness"))
    if why_not:
        meta["warnings"].append(why_not)
    if resample:
        step = even_grid_step(geom.offsets, geom.step)
        n_slices = resampled_count(geom.offsets, step)
        meta["resampled_equidistant"] = True
        meta["sop_uids"] = []
        meta["source_slice_positions_mm"] = meta["slice_positions_mm"]
        meta["slice_positions_mm"] = [float(x) for x in np.arange(n_slices) * step]
        steps = ", ".join(f"{v:.4g}" for v in np.unique(np.round(geom.steps, 3)))
        meta["warnings"].append(
            f"resampled {len(refs)} unevenly spaced slices (steps of {steps} mm, {geom.offsets[-1]:.4g} mm first "
            f"to last) to {n_slices} slices at {step:.4g} mm, linear along the slice normal "
            "(uneven='keep' keeps the acquired slices)"
        )
    elif geom.uneven:
        meta["warnings"].append(
            f"kept {len(refs)} unevenly spaced slices at the usual step of {step:.4g} mm: the volume does not span "
            f"the true {geom.offsets[-1]:.4g} mm; true positions in meta['slice_positions_mm']"
        )
    for warning in meta["warnings"]:
        log.warning("%s, series %s: %s", name, info.index, warning)
    direction = np.stack([geom.normal, geom.column_cosine, geom.row_cosine], axis=1)
    meta = deidentify_meta(meta)  # the one place: what the reader returns is de-identified, nobody re-runs it
    return SeriesPlan(info, refs, geom, meta, resample, n_slices, (step, dy, dx), direction)


def _decode_plan(plan: SeriesPlan, workers: int | None) -> Volume:
    """Decode the planned slices (``workers`` threads for compressed data; None: the setting, read only then)."""
    hu = decode_hu(plan.refs, workers=workers)
    if plan.geom.tilted:
        hu = _correct_tilt(hu, plan.geom, plan.spacing[1], plan.spacing[2])
    if plan.resample:
        hu, _ = _resample_even(hu, plan.geom.offsets, plan.spacing[0])
    return plan.volume(hu)


def read_dicom(
    source: PathInput,
    series: int | str | None = None,
    *,
    tilt: TiltPolicy = "correct",
    uneven: UnevenPolicy = "resample",
    workers: int | None = None,
    volume: int | None = None,
) -> Volume:
    """Read one DICOM series (see the module docstring for the policies) into a HU Volume.

    ``volume``: which volume (0-based) of a series holding several (time points, diffusion directions); default 0.

    Example:
        >>> vol = read_dicom("series_folder/", series="B70f", uneven="keep")  # doctest: +SKIP
    """
    with DicomSource(source) as src:
        plan = plan_series(src, series, tilt=tilt, uneven=uneven, workers=workers, volume=volume)
        return _decode_plan(plan, workers)


def read_dicom_volumes(
    source: PathInput,
    series: int | str | None = None,
    *,
    tilt: TiltPolicy = "correct",
    uneven: UnevenPolicy = "resample",
    workers: int | None = None,
) -> list[Volume]:
    """Every volume of one DICOM series, in acquisition order (one for a 3-D series); headers are read once.

    Each volume is what ``read_dicom(source, series, volume=k)`` returns (``meta["volume_index"] == k``).

    Example:
        >>> volumes = read_dicom_volumes("fmri_folder/")  # doctest: +SKIP
        >>> len(volumes) == volumes[0].meta["n_volumes"]  # doctest: +SKIP
        True
    """
    if uneven not in UNEVEN_POLICIES:
        raise CTLensError(
            f"uneven={uneven!r} is not a policy for uneven slice spacing",
            hint="use " + ", ".join(repr(p) for p in UNEVEN_POLICIES),
        )
    with DicomSource(source) as src:
        infos, notes = _scan(src, workers)
        info, why = select_series(infos, series, src.name)
        return [
            _decode_plan(plan_entry(src.name, infos, info, why, notes, tilt=tilt, uneven=uneven, volume=k), workers)
            for k in range(info.n_volumes)
        ]
