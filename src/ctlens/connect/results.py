"""Results as DICOM: one call from :class:`~ctlens.analysis.findings.Findings` to SEG, TID 1500 SR and (optionally)
a Secondary Capture that reference the source instances.

* SEG (:mod:`ctlens.connect.seg`): lungs (or brain) and each candidate's bounding region, on the source geometry;
* SR (:mod:`ctlens.connect.sr`): a TID 1500 Measurement Report with the lung and candidate measurements,
  referencing the SEG segments;
* SC (:mod:`ctlens.connect.secondary_capture`, ``heatmap=True``): the heatmap overlay on the most relevant slice.

These objects go back to the archive the source came from, so they KEEP the source's patient and study modules
(patient name and ID, study UID, accession number, ...), copied from the original headers. They are not
de-identified and must never be sent to an LLM or exported as anonymous data; the de-identified paths
(``ctlens.llm`` payloads, exports) are elsewhere and unchanged.

``sources`` is what the volume was read from: a folder or zip, a list of files, or header-only
``pydicom.Dataset`` s (e.g. from WADO-RS metadata, ``Dataset.from_json``); see
:mod:`ctlens.connect.source_instances`. New UIDs are made under ``uid_root`` (default: the ``dicom_uid_root``
setting, ``CTLENS_DICOM_UID_ROOT``; else ``2.25.`` UUID-derived UIDs).

``findings`` are those of ``analyze(volume)``, made on the display grid (``to_display(volume)``); they are moved to
the volume's stored grid (:mod:`ctlens.analysis.stored_grid`) so SEG frames and boxes line up with the source
pixels whatever their storage order (prone, feet first, ...). A copy of the volume in another axis order (the
service keeps ``to_display(volume)``) is first put back in the source's storage order with
:func:`in_source_order`, so both paths make the same objects.

When there is nothing to segment (no lung / brain mask and no candidate), the SEG is left out with a warning in
the log (``ctlens.connect``) and the SR is still made.

Example:
    >>> paths = write_dicom_results(findings, volume, "series_folder/", Path("out"))  # doctest: +SKIP
    >>> [p.name for p in paths]  # doctest: +SKIP
    ['seg.dcm', 'sr.dcm']
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom

from ctlens.analysis.findings import Findings
from ctlens.analysis.stored_grid import findings_on_stored_grid
from ctlens.connect.dicom_identity import uid_root_or_default
from ctlens.connect.secondary_capture import build_secondary_capture
from ctlens.connect.seg import build_segmentation
from ctlens.connect.source_instances import SourceInput, match_source_instances, read_source_headers
from ctlens.connect.sr import build_measurement_report
from ctlens.core.volume import Volume
from ctlens.io.dicom_series import is_localizer_header
from ctlens.io.uid_hash import hash_uid
from ctlens.preprocess.orientation import permute_axes

__all__ = ["RESULT_FILE_NAMES", "dicom_results", "in_source_order", "result_file_name", "write_dicom_results"]

log = logging.getLogger("ctlens.connect")

RESULT_FILE_NAMES = {"SEG": "seg.dcm", "SR": "sr.dcm", "OT": "sc.dcm"}
"""File name of each result object in ``write_dicom_results``' folder, by Modality (the SC's is OT)."""


def result_file_name(ds: pydicom.Dataset) -> str:
    """``seg.dcm``, ``sr.dcm`` or ``sc.dcm`` for a result object.

    Example:
        >>> d = pydicom.Dataset(); d.Modality = "SR"
        >>> result_file_name(d)
        'sr.dcm'
    """
    return RESULT_FILE_NAMES.get(str(ds.get("Modality", "")), "sc.dcm")


def dicom_results(
    findings: Findings,
    volume: Volume,
    sources: SourceInput,
    *,
    heatmap: bool = False,
    uid_root: str | None = None,
) -> list[pydicom.Dataset]:
    """``[SEG, SR]`` (``[SR]`` when there is nothing to segment), plus the SC when ``heatmap`` and there is one.

    Raises :class:`~ctlens.core.errors.PacsError` when ``sources`` are not the analysed series (module docs of
    :mod:`ctlens.connect.source_instances`).

    Example:
        >>> seg, sr = dicom_results(findings, volume, "series_folder/")  # doctest: +SKIP
    """
    root = uid_root_or_default(uid_root)
    findings = findings_on_stored_grid(findings, volume)  # analysis works on the display grid; SEG on the stored one
    series = match_source_instances(volume, sources)
    seg, segments = build_segmentation(findings, volume, series, uid_root=root)
    if seg is None:
        log.warning("%s: nothing to segment, so no SEG; the SR is still written", series.name)
    sr = build_measurement_report(findings, series, seg, segments, uid_root=root)
    out: list[pydicom.Dataset] = [ds for ds in (seg, sr) if ds is not None]
    if heatmap:
        sc = build_secondary_capture(findings, volume, series, uid_root=root)
        if sc is not None:
            out.append(sc)
    return out


def _source_orientations(volume: Volume, headers: list[pydicom.Dataset]) -> Counter:
    """How many planes of the analysed series have each (ImageOrientationPatient, Rows, Columns)."""
    wanted = volume.meta.get("series_uid")
    read_from = set(volume.meta.get("source_sop_uids") or [])
    votes: Counter = Counter()
    for ds in headers:
        if "ImageOrientationPatient" not in ds or int(ds.get("NumberOfFrames", 1) or 1) > 1:
            continue
        if wanted and hash_uid(str(ds.get("SeriesInstanceUID", ""))) != wanted:
            continue
        if read_from and hash_uid(str(ds.get("SOPInstanceUID", ""))) not in read_from:
            continue
        if is_localizer_header(ds):
            continue
        try:
            iop = tuple(round(float(v), 4) for v in ds.ImageOrientationPatient)
            size = (int(ds.Rows), int(ds.Columns))
        except (AttributeError, TypeError, ValueError):
            continue
        if len(iop) == 6 and np.isfinite(iop).all():
            votes[(iop, size)] += 1
    return votes


def _permutation(volume: Volume, iop: tuple[float, ...]) -> tuple[list[int], list[bool]] | None:
    """Axis order and flips that give ``volume`` the reader's axes for planes of ``iop`` (normal, column, row)."""
    row, col = np.asarray(iop[:3], dtype=np.float64), np.asarray(iop[3:], dtype=np.float64)
    if min(np.linalg.norm(row), np.linalg.norm(col)) < 1e-6:
        return None
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 1e-6:
        return None
    target = np.stack([normal / np.linalg.norm(normal), col, row], axis=1)
    dots = np.asarray(volume.direction, dtype=np.float64).T @ target  # [volume axis, stored axis]
    order = [int(np.argmax(np.abs(dots[:, j]))) for j in range(3)]
    if sorted(order) != [0, 1, 2] or min(abs(dots[order[j], j]) for j in range(3)) < 1 - 1e-3:
        return None
    return order, [bool(dots[order[j], j] < 0) for j in range(3)]


def in_source_order(volume: Volume, sources: SourceInput) -> Volume:
    """``volume`` with its array axes in the order the reader gives the source series, by exact flips and
    transposes: (slice normal, column, row) of the source planes' ImageOrientationPatient.

    For a copy of the analysed volume kept in another axis order, such as the service's ``to_display(volume)``:
    the result is on the grid of the source pixels, and findings made on ``to_display`` of either are the same,
    so :func:`dicom_results` of it maps them onto every source plane (prone, feet first, coronal, ...). The
    planes considered are the analysed series' (``meta["series_uid"]``, the planes read, no localizers); when
    several orientations are present, the most frequent one that fits the volume's size wins. ``volume`` comes
    back unchanged (the same object) when it is already in that order or no source plane fits it; then
    :func:`dicom_results` says why the sources do not match.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> from ctlens.preprocess.display import to_display
        >>> ds = Dataset(); ds.SOPInstanceUID = "1.2.3.1"; ds.ImagePositionPatient = [0, 0, 0]
        >>> ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]; ds.Rows, ds.Columns = 3, 4    # stored prone
        >>> prone = Volume(np.arange(24).reshape(2, 3, 4), direction=np.diag([-1.0, -1.0, 1.0])[:, ::-1])
        >>> back = in_source_order(to_display(prone), [ds])
        >>> bool(np.array_equal(back.array, prone.array)), bool(np.allclose(back.affine, prone.affine))
        (True, True)
    """
    headers, _ = read_source_headers(sources)
    for (iop, size), _ in _source_orientations(volume, headers).most_common():
        found = _permutation(volume, iop)
        if found is None:
            continue
        order, flips = found
        if tuple(volume.shape[a] for a in order[1:]) != size:
            continue
        return volume if order == [0, 1, 2] and not any(flips) else permute_axes(volume, order, flips)
    return volume


def write_dicom_results(
    findings: Findings,
    volume: Volume,
    sources: SourceInput,
    out_dir: Path,
    *,
    heatmap: bool = False,
    uid_root: str | None = None,
) -> list[Path]:
    """Write :func:`dicom_results` as ``out_dir/seg.dcm``, ``sr.dcm`` (and ``sc.dcm``), atomically; their paths.

    On any error the files this call wrote are removed again (a file is never half-written). Result files of
    an earlier call that this one does not write again (``seg.dcm`` when there is nothing to segment now,
    ``sc.dcm`` without ``heatmap``) are removed, so the folder always holds one consistent set.

    Example:
        >>> write_dicom_results(findings, volume, "series_folder/", Path("out"), heatmap=True)  # doctest: +SKIP
        [PosixPath('out/seg.dcm'), PosixPath('out/sr.dcm'), PosixPath('out/sc.dcm')]
    """
    from ctlens.io.files import atomic_output

    datasets = dicom_results(findings, volume, sources, heatmap=heatmap, uid_root=uid_root)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for ds in datasets:
            path = out_dir / result_file_name(ds)
            with atomic_output(path) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    for name in set(RESULT_FILE_NAMES.values()) - {p.name for p in written}:
        (out_dir / name).unlink(missing_ok=True)
    return written
