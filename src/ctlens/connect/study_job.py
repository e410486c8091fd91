"""What the listener does with a received study: analyse it, write the results, send them on.

:func:`process_study` is the listener's default ``on_study``. For a study folder of the spool it

1. picks one series the way :func:`ctlens.load` does for a multi-series folder (the largest axial CT series,
   scouts and localizers dropped; :func:`ctlens.io.dicom_series.default_series`). One series, not each:
   a CT study usually holds the same scan in several reconstructions, and the analysis of the largest axial
   one is the answer a reader wants; the choice is written to ``study.json``;
2. loads it (uneven spacing resampled, as the analysis needs) and runs
   :func:`ctlens.analysis.analyze.analyze`;
3. writes ``findings.json`` and the DICOM SEG / SR (:func:`ctlens.connect.results.write_dicom_results`,
   referencing the chosen series' instances) into ``<results_dir>/<study key>/``;
4. sends those DICOM results to ``destination`` (``dicom://...`` or a DICOMweb URL), if one is given.

Any failure raises (a :class:`~ctlens.core.errors.CTLensError` where the cause is known); the listener
records it in ``error.txt`` and carries on.

Example:
    >>> StudyResult("abc", Path("out/abc"), [Path("out/abc/findings.json")], "#0 axial CT, 30 slices").summary()
    'findings.json in out/abc (#0 axial CT, 30 slices)'
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ctlens.connect.spool import SpooledStudy

__all__ = ["StudyResult", "process_study"]

log = logging.getLogger(__name__)


@dataclass
class StudyResult:
    """The outcome of one processed study: its key, results folder, files written, series analysed, sending."""

    key: str
    folder: Path
    files: list[Path]
    series: str
    sent: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the listener's output."""
        text = f"{', '.join(p.name for p in self.files)} in {self.folder} ({self.series})"
        return text + (f"; {self.sent}" if self.sent else "")


def process_study(
    study: SpooledStudy,
    results_dir: Path,
    *,
    destination: str | None = None,
    calling_ae: str | None = None,
    uid_root: str | None = None,
    heatmap: bool = False,
) -> StudyResult:
    """Analyse the spooled ``study`` and write (and send) its results; see the module docstring.

    Example:
        >>> result = process_study(spool.claim(key), Path("results"))  # doctest: +SKIP
        >>> result.summary()  # doctest: +SKIP
        'findings.json, seg.dcm, sr.dcm in results/5f0c... (#0 axial CT 30 slices, kernel B40f)'
    """
    import ctlens
    from ctlens.analysis.analyze import analyze
    from ctlens.io.dicom_reader import list_series
    from ctlens.io.dicom_series import default_series
    from ctlens.io.files import atomic_output

    infos = list_series(study.folder)
    if not infos:
        from ctlens.core.errors import SeriesSelectionError

        raise SeriesSelectionError(f"no image series among {study.instances} received instance(s)", path=study.key)
    chosen, why = default_series(infos)
    sources = Path(chosen.refs[0].file.path).parent  # the spool's series folder: <study>/<series>/
    label = f"#{chosen.index} {chosen.orientation} {chosen.modality} {chosen.n_slices} slices"
    label += f", kernel {chosen.kernel}" if chosen.kernel else ""
    volume = ctlens.load(study.folder, series=chosen.index, uneven="resample")
    findings = analyze(volume)

    out = Path(results_dir) / study.key
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / "study.json") as tmp:
        choice = {"series": label, "series_id": chosen.series_id, "of_series": len(infos), "instances": study.instances}
        tmp.write_text(json.dumps(choice | {"why": why.split(":")[-1].strip()}, indent=2), encoding="utf-8")
    files = [findings.save(out / "findings.json")]
    from ctlens.connect.results import write_dicom_results

    dicom = write_dicom_results(findings, volume, sources, out, heatmap=heatmap, uid_root=uid_root)
    files += list(dicom)
    (out / "error.txt").unlink(missing_ok=True)  # an earlier attempt's failure is history now
    result = StudyResult(study.key, out, files, label)
    if destination and dicom:
        from ctlens.connect.destination import send_to

        result.sent = send_to(dicom, destination, calling_ae=calling_ae)
    return result
