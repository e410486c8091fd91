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
pixels whatever their storage order (prone, feet first, ...).

When there is nothing to segment (no lung / brain mask and no candidate), the SEG is left out with a warning in
the log (``ctlens.connect``) and the SR is still made.

Example:
    >>> paths = write_dicom_results(findings, volume, "series_folder/", Path("out"))  # doctest: +SKIP
    >>> [p.name for p in paths]  # doctest: +SKIP
    ['seg.dcm', 'sr.dcm']
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom

from ctlens.analysis.findings import Findings
from ctlens.analysis.stored_grid import findings_on_stored_grid
from ctlens.connect.dicom_identity import uid_root_or_default
from ctlens.connect.secondary_capture import build_secondary_capture
from ctlens.connect.seg import build_segmentation
from ctlens.connect.source_instances import SourceInput, match_source_instances
from ctlens.connect.sr import build_measurement_report
from ctlens.core.volume import Volume

__all__ = ["RESULT_FILE_NAMES", "dicom_results", "result_file_name", "write_dicom_results"]

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
