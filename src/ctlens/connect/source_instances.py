"""The source instances of an analysed series: their ORIGINAL headers, each matched to a Volume slice by geometry.

Results as DICOM (:mod:`ctlens.connect.results`) go back to the archive the source came from: they reference
the instances the :class:`~ctlens.core.volume.Volume` was read from and copy their patient and study modules.
So this module reads the original, not de-identified, headers (``pydicom.dcmread(..., stop_before_pixels=True)``)
of a folder or zip, a list of files, or takes header-only datasets already in memory (for example built with
``pydicom.Dataset.from_json`` from WADO-RS metadata).

Which instances: those of the analysed series (``hash_uid(SeriesInstanceUID) == volume.meta["series_uid"]``;
when the meta has no series UID, the one series present). Localizers and planes of another orientation, size or
pixel spacing (another stack of the same series) are not part of the volume and are left out.

Which slice: by geometry, whatever the storage order or file order. A source plane's ImagePositionPatient is
measured along the volume's slice normal and in its plane; it belongs to the nearest volume slice. Volume slices
lie at ``meta["slice_positions_mm"]`` when the reader kept the slices as they were (also uneven ones), else on
the equidistant grid (``uneven="resample"``, or a volume without that meta). A plane further from its slice than
:data:`POSITION_TOLERANCE_MM` (half a slice step for a resampled volume), or whose in-plane origin is not on the
volume's pixel grid, is refused with a :class:`~ctlens.core.errors.PacsError`. A gantry-tilt-corrected volume
shifted each slice within its plane; its planes are matched to the nearest whole pixel.

The matched instances must agree on the patient (ID and name), the study and the frame of reference, and the
study must be the analysed one (``volume.meta["study_uid"]``, hashed): results never mix or change patients.

Example:
    >>> series = match_source_instances(volume, "series_folder/")  # doctest: +SKIP
    >>> [(s.slice_index, s.dataset.SOPInstanceUID) for s in series.instances][:2]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ctlens.core.errors import CTLensError, PacsError
from ctlens.core.volume import Volume
from ctlens.io.dicom_magic import is_raw_dataset, read_head
from ctlens.io.dicom_series import is_localizer_header
from ctlens.io.dicom_source import DicomSource
from ctlens.io.uid_hash import hash_uid

__all__ = [
    "POSITION_TOLERANCE_MM",
    "SourceInput",
    "SourceInstance",
    "SourceSeries",
    "match_source_instances",
    "read_source_headers",
    "shift_plane",
]

log = logging.getLogger("ctlens.connect")

SourceInput = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[Dataset]
POSITION_TOLERANCE_MM = 0.05
"""Largest distance (mm) of a source plane from its volume slice, along the normal and within the plane."""
_COSINE_TOLERANCE = 1e-3
_SAME_SUBJECT = ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID")
_SPACING_RTOL = 1e-3


@dataclass(frozen=True)
class SourceInstance:
    """One source image (header only) and where it lies in the volume.

    ``slice_index``: the volume slice its plane is; ``shift``: ``(rows, columns)`` of the volume slice at the
    source's pixel ``(0, 0)`` (``(0, 0)`` except for tilt-corrected volumes); ``distance_mm``: signed distance of
    the source plane from that slice along the normal.
    """

    dataset: Dataset
    slice_index: int
    shift: tuple[int, int]
    distance_mm: float

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def position(self) -> tuple[float, float, float]:
        """ImagePositionPatient (LPS mm)."""
        return tuple(float(v) for v in self.dataset.ImagePositionPatient)  # type: ignore[return-value]


def shift_plane(plane: np.ndarray, shift: tuple[int, int], fill: Any = 0) -> np.ndarray:
    """``out[r, c] = plane[r + shift[0], c + shift[1]]``, ``fill`` outside ``plane``.

    Example:
        >>> shift_plane(np.arange(6).reshape(2, 3), (0, 1)).tolist()
        [[1, 2, 0], [4, 5, 0]]
    """
    out = np.full_like(plane, fill)
    rows, cols = plane.shape
    sy, sx = shift
    if abs(sy) >= rows or abs(sx) >= cols:
        return out
    out[max(0, -sy) : rows - max(0, sy), max(0, -sx) : cols - max(0, sx)] = plane[
        max(0, sy) : rows - max(0, -sy), max(0, sx) : cols - max(0, -sx)
    ]
    return out


@dataclass
class SourceSeries:
    """The analysed series' source instances, ordered by slice index (then along the normal)."""

    instances: list[SourceInstance]
    rows: int
    columns: int
    name: str

    @property
    def datasets(self) -> list[Dataset]:
        """The instances' headers, in :attr:`instances` order."""
        return [s.dataset for s in self.instances]

    @property
    def slice_indices(self) -> list[int]:
        return [s.slice_index for s in self.instances]

    def frames(self, plane: Callable[[int], np.ndarray | None], dtype: Any = bool) -> np.ndarray:
        """``(instances, rows, columns)``: ``plane(z)`` (a volume slice, or ``None`` for empty) on each source grid.

        Example:
            >>> s = SourceSeries([SourceInstance(Dataset(), 1, (0, 0), 0.0)], 2, 2, "demo")
            >>> int(s.frames(lambda z: np.full((2, 2), z == 1)).sum())
            4
        """
        out = np.zeros((len(self.instances), self.rows, self.columns), dtype=dtype)
        cache: dict[int, np.ndarray | None] = {}
        for i, inst in enumerate(self.instances):
            if inst.slice_index not in cache:
                cache[inst.slice_index] = plane(inst.slice_index)
            values = cache[inst.slice_index]
            if values is not None:
                out[i] = shift_plane(np.asarray(values), inst.shift) if inst.shift != (0, 0) else values
        return out

    def nearest_instance(self, slice_index: int) -> SourceInstance | None:
        """The source instance on volume slice ``slice_index`` (closest to it), or ``None``."""
        on = [s for s in self.instances if s.slice_index == slice_index]
        return min(on, key=lambda s: abs(s.distance_mm)) if on else None


# ------------------------------------------------------------------------------------------------- reading


def _read_one(path: Path) -> Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        if is_raw_dataset(read_head(path)):
            try:
                return pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception as exc:  # noqa: BLE001 - any parser failure means "not readable"
                log.info("%s: unreadable DICOM header (%s)", path, exc)
        return None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt files raise many types
        log.info("%s: unreadable DICOM header (%s)", path, exc)
        return None


def read_source_headers(sources: SourceInput) -> tuple[list[Dataset], str]:
    """The DICOM headers (no pixels) of a folder / zip / file / list of files, or the given datasets as they are.

    Returns ``(headers, name for messages)``; files that are not DICOM are skipped.

    Example:
        >>> ds = Dataset(); ds.SOPInstanceUID = "1.2.3"
        >>> headers, name = read_source_headers([ds])
        >>> len(headers), name
        (1, '1 dataset(s)')
    """
    if not isinstance(sources, str | os.PathLike) and len(sources) and all(isinstance(s, Dataset) for s in sources):
        return list(sources), f"{len(sources)} dataset(s)"  # type: ignore[arg-type]
    if not isinstance(sources, str | os.PathLike) and any(isinstance(s, Dataset) for s in sources):
        raise PacsError("source instances mix datasets and file paths", hint="give either files or datasets")
    try:
        with DicomSource(sources) as src:  # type: ignore[arg-type]
            name = src.name
            with ThreadPoolExecutor(max_workers=8) as pool:
                headers = [h for h in pool.map(_read_one, [f.path for f in src.files]) if h is not None]
    except PacsError:
        raise
    except CTLensError as exc:
        raise PacsError(f"cannot read the source instances: {exc.reason}", path=exc.path, hint=exc.hint) from exc
    if not headers:
        raise PacsError("no DICOM instances found", path=name, hint="give the folder or files the series was read from")
    return headers, name


# ------------------------------------------------------------------------------------------------- matching


def _series_of(headers: list[Dataset], volume: Volume, name: str) -> list[Dataset]:
    by_series: dict[str, list[Dataset]] = defaultdict(list)
    for ds in headers:
        if "ImagePositionPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds:
            by_series[str(ds.get("SeriesInstanceUID", ""))].append(ds)
    wanted = volume.meta.get("series_uid")
    if wanted:
        for uid, members in by_series.items():
            if hash_uid(uid) == wanted:
                return members
        raise PacsError(
            f"none of the {len(by_series)} image series here is the analysed series",
            path=name,
            hint="give the folder, files or metadata of the series the volume was read from",
        )
    if len(by_series) == 1:
        return next(iter(by_series.values()))
    raise PacsError(
        f"{len(by_series)} image series are here and the volume does not say which one it was read from",
        path=name,
        hint="give only the analysed series' instances",
    )


def _floats(ds: Dataset, keyword: str, n: int, name: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in ds.get(keyword)], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if values.shape != (n,) or not np.isfinite(values).all():
        raise PacsError(
            f"source instance {ds.get('SOPInstanceUID', '?')} has no valid {keyword}",
            path=name,
            hint="results as DICOM need cross-sectional source images",
        )
    return values


def _same_stack(ds: Dataset, volume: Volume, name: str) -> str | None:
    """Why ``ds`` is not a plane of the volume's stack (another orientation, size or spacing), else None."""
    iop = _floats(ds, "ImageOrientationPatient", 6, name)
    norms = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
    if min(norms) < 1e-6:
        return "another orientation"
    row, col = iop[:3] / norms[0], iop[3:] / norms[1]
    if not (np.allclose(row, volume.direction[:, 2], atol=_COSINE_TOLERANCE)):
        return "another orientation"
    if not (np.allclose(col, volume.direction[:, 1], atol=_COSINE_TOLERANCE)):
        return "another orientation"
    if (int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) != tuple(volume.shape[1:]):
        return "another size"
    spacing = _floats(ds, "PixelSpacing", 2, name)
    if not np.allclose(spacing, volume.spacing[1:], rtol=_SPACING_RTOL, atol=1e-4):
        return "another pixel spacing"
    return None


def _slice_positions(volume: Volume) -> tuple[np.ndarray, float]:
    """Each volume slice's position along the normal (mm from the origin) and the tolerance to match it."""
    n, step = volume.shape[0], volume.spacing[0]
    grid = np.arange(n) * step
    recorded = volume.meta.get("slice_positions_mm")
    if volume.meta.get("resampled_equidistant"):
        return grid, 0.5 * step + POSITION_TOLERANCE_MM
    if recorded is not None and len(recorded) == n:
        return np.asarray(recorded, dtype=np.float64), POSITION_TOLERANCE_MM
    return grid, max(POSITION_TOLERANCE_MM, 0.011 * step)


def _place(ds: Dataset, volume: Volume, positions: np.ndarray, tol: float, name: str) -> SourceInstance:
    sop = str(ds.get("SOPInstanceUID", "?"))
    rel = _floats(ds, "ImagePositionPatient", 3, name) - np.asarray(volume.origin)
    along = float(rel @ volume.direction[:, 0])
    k = int(np.argmin(np.abs(positions - along)))
    distance = along - float(positions[k])
    if abs(distance) > tol:
        raise PacsError(
            f"source instance {sop} lies {distance:+.3f} mm from the nearest slice of the analysed volume "
            f"(slice {k}; tolerance {tol:.3g} mm): its plane is not on the volume's grid",
            path=name,
            hint="give the instances the volume was read from, or analyse the series again",
        )
    inplane = np.array(
        [rel @ volume.direction[:, 1] / volume.spacing[1], rel @ volume.direction[:, 2] / volume.spacing[2]]
    )
    whole = np.rint(inplane)
    residual_mm = float(np.hypot(*((inplane - whole) * np.asarray(volume.spacing[1:]))))
    if residual_mm > POSITION_TOLERANCE_MM and not volume.meta.get("tilt_corrected"):
        raise PacsError(
            f"source instance {sop} is offset by {residual_mm:.3f} mm within its plane from the volume's pixel grid",
            path=name,
            hint="give the instances the volume was read from, or analyse the series again",
        )
    return SourceInstance(ds, k, (int(whole[0]), int(whole[1])), distance)


def _check_sop_uids(instances: list[SourceInstance], volume: Volume, name: str) -> None:
    """With the reader's per-slice hashed SOP UIDs, each instance must be the one its slice was read from."""
    recorded = volume.meta.get("sop_uids") or []
    if len(recorded) != volume.shape[0] or volume.meta.get("resampled_equidistant"):
        return
    seen: dict[int, str] = {}
    for inst in instances:
        if hash_uid(inst.sop_instance_uid) != recorded[inst.slice_index] or inst.slice_index in seen:
            raise PacsError(
                f"source instance {inst.sop_instance_uid} lies on slice {inst.slice_index} of the analysed volume, "
                "but that slice was read from another instance",
                path=name,
                hint="give the instances the volume was read from, unchanged",
            )
        seen[inst.slice_index] = inst.sop_instance_uid


def _check_same_subject(instances: list[SourceInstance], volume: Volume, name: str) -> None:
    """One patient, study and frame of reference among the instances, and the analysed study (values never shown)."""
    for keyword in _SAME_SUBJECT:
        values = {str(s.dataset.get(keyword, "") or "").strip() for s in instances}
        if len(values) > 1:
            raise PacsError(
                f"the source instances disagree on {keyword} ({len(values)} different values)",
                path=name,
                hint="give the instances of one series, as the archive holds them",
            )
    wanted = volume.meta.get("study_uid")
    study = str(instances[0].dataset.get("StudyInstanceUID", "") or "")
    if wanted and volume.meta.get("series_uid") and hash_uid(study) != wanted:
        raise PacsError(
            "the source instances belong to another study than the analysed one",
            path=name,
            hint="give the instances the volume was read from",
        )


def match_source_instances(volume: Volume, sources: SourceInput) -> SourceSeries:
    """Read (or take) the source headers, keep the analysed series, and map each instance to a volume slice.

    Raises :class:`~ctlens.core.errors.PacsError` when the series is not there, is ambiguous, or its planes are
    not on the volume's grid (module docs).

    Example (header-only datasets in memory, stored in another order than the slices):
        >>> def header(z):
        ...     ds = Dataset(); ds.SOPInstanceUID = f"1.2.3.{z}"; ds.SeriesInstanceUID = "1.2.3"
        ...     ds.ImagePositionPatient = [0, 0, z]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ...     ds.PixelSpacing = [1, 1]; ds.Rows = ds.Columns = 4
        ...     return ds
        >>> vol = Volume(np.zeros((3, 4, 4)), spacing=(2.0, 1.0, 1.0))
        >>> series = match_source_instances(vol, [header(4), header(0), header(2)])
        >>> [(s.slice_index, s.sop_instance_uid) for s in series.instances]
        [(0, '1.2.3.0'), (1, '1.2.3.2'), (2, '1.2.3.4')]
        >>> match_source_instances(vol, [header(3)])
        Traceback (most recent call last):
        ...
        ctlens.core.errors.PacsError: 1 dataset(s): source instance 1.2.3.3 lies +1.000 mm from the nearest slice ...
    """
    headers, name = read_source_headers(sources)
    members = _series_of(headers, volume, name)
    positions, tol = _slice_positions(volume)
    placed: list[SourceInstance] = []
    skipped: dict[str, int] = defaultdict(int)
    read_from = set(volume.meta.get("source_sop_uids") or [])
    for ds in members:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
            raise PacsError(
                f"source instance {ds.get('SOPInstanceUID', '?')} is a multi-frame image",
                path=name,
                hint="results as DICOM support single-frame source series only",
            )
        if read_from and hash_uid(str(ds.get("SOPInstanceUID", ""))) not in read_from:
            skipped["another part of the series (acquisition, echo or volume) than the one analysed"] += 1
            continue
        if is_localizer_header(ds):  # the reader's rule: such planes are never part of the volume
            skipped["localizer"] += 1
            continue
        why = _same_stack(ds, volume, name)
        if why is not None:
            skipped[why] += 1
            continue
        placed.append(_place(ds, volume, positions, tol, name))
    if not placed:
        reasons = ", ".join(f"{n} of {why}" for why, n in skipped.items()) or "none are images"
        raise PacsError(
            f"no instance of the analysed series lies on the volume's grid ({reasons})",
            path=name,
            hint="give the instances the volume was read from",
        )
    if skipped:
        log.info("%s: left out %s", name, ", ".join(f"{n} instance(s) of {why}" for why, n in skipped.items()))
    placed.sort(key=lambda s: (s.slice_index, s.distance_mm))
    _check_sop_uids(placed, volume, name)
    _check_same_subject(placed, volume, name)
    return SourceSeries(placed, int(volume.shape[1]), int(volume.shape[2]), name)
