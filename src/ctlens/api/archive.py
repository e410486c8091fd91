"""The service's DICOM archive (DICOMweb): search it, analyse one of its series like an upload, send results back.

An archive series is retrieved by WADO-RS into the service's private staging folder and then goes through
exactly what an upload goes through (:func:`ctlens.api.intake.analyse_staged`): the same content key (the
SHA-256 of its files, so the same bytes uploaded or retrieved are one cached content), the same de-identified
artifacts, the same job (``202``) for big ones, the same study rows per API key. The retrieved files are
deleted as soon as they have been read, also when anything fails.

Besides that, the service keeps one link per study: the archive's Study and Series Instance UIDs
(:mod:`ctlens.api.archive_links`), because sending results back must name the series the SEG / SR refer to
and fetch its headers again at send time; nothing else identifying is stored. Archive failures become RFC 7807
problems: 502 when the archive fails or refuses, 504 when it times out (404 when it has no such study or
series), with one line that names the archive's host but no credentials, URL paths or local file paths.

Example:
    >>> study_row({"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00080020": {"vr": "DA", "Value": ["20240131"]},
    ...            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}})
    {'study_uid': '1.2.3', 'date': '2024-01-31', 'modalities': [], 'series': None, 'instances': None}
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctlens.api.archive_links import ArchiveLink, links_for
from ctlens.api.artifacts import load_artifacts
from ctlens.api.intake import Intake, analyse_staged
from ctlens.api.schemas import UID_PATTERN, Study
from ctlens.api.sniff import sniff_file
from ctlens.api.store import new_id
from ctlens.api.studies import owned_study, ready_result
from ctlens.api.uploads import StagedUpload, content_key
from ctlens.core.errors import CTLensError, PacsError, ServiceError
from ctlens.core.settings import Settings

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

logger = logging.getLogger("ctlens.api")

NOT_CONFIGURED_HINT = "set CTLENS_DICOMWEB_URL to the archive's DICOMweb root, e.g. http://host:8042/dicom-web"
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "REG", "RTSTRUCT", "RTPLAN", "RTRECORD", "DOC", "FID"})
"""Series modalities that are never analysed unless asked for by UID (results, annotations, documents)."""

STUDY_UID, STUDY_DATE, MODALITIES = "0020000D", "00080020", "00080061"
STUDY_SERIES, STUDY_INSTANCES = "00201206", "00201208"
SERIES_UID, MODALITY, SERIES_NUMBER, SERIES_INSTANCES = "0020000E", "00080060", "00200011", "00201209"


# --- configuration and errors ----------------------------------------------------------------------------------
def configured(settings: Settings) -> bool:
    """Whether an archive is configured (``CTLENS_DICOMWEB_URL``).

    Example:
        >>> configured(Settings(dicomweb_url=None)), configured(Settings(dicomweb_url="http://pacs/dicom-web"))
        (False, True)
    """
    return bool(settings.dicomweb_url)


def client_for(settings: Settings, max_bytes: int | None = None) -> Any:
    """A :class:`ctlens.io.dicomweb.DicomWebClient` for the service's archive, or a 404 problem when none is set.

    ``max_bytes`` caps one retrieval (default: the smaller of ``dicomweb_max_bytes`` and ``max_upload_bytes``,
    so an archive series has the same budget as an upload).
    """
    if not configured(settings):
        raise ServiceError("no archive is configured for this service", status=404, hint=NOT_CONFIGURED_HINT)
    try:
        from ctlens.io.dicomweb import DicomWebClient
    except ImportError as exc:
        raise ServiceError(f"the DICOMweb client is not available ({exc.name})", status=503) from None
    token = settings.dicomweb_token.get_secret_value() if settings.dicomweb_token else None
    password = settings.dicomweb_password.get_secret_value() if settings.dicomweb_password else None
    return DicomWebClient(
        settings.dicomweb_url,
        token=token,
        username=settings.dicomweb_username,
        password=password,
        timeout=settings.dicomweb_timeout,
        deadline=settings.dicomweb_deadline,
        retries=settings.dicomweb_retries,
        max_bytes=max_bytes or min(settings.dicomweb_max_bytes, settings.max_upload_bytes),
    )


_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^\s/@'\"<>]*@)?([^\s/'\"<>?#]+)[^\s'\"<>]*")
_PATH = re.compile(r"(?<![\w.:/-])(?:/[\w.@+~-]+){2,}/?")


def scrub(text: str, settings: Settings, extra: tuple[str, ...] = ()) -> str:
    """``text`` without credentials, URL paths or local file paths (an archive URL becomes its ``host:port``).

    Example:
        >>> s = Settings(dicomweb_url="http://u:pw@pacs:8042/dicom-web", dicomweb_password="pw")
        >>> scrub("GET http://u:pw@pacs:8042/dicom-web/studies/1.2 failed; wrote /srv/ctlens/uploads/ar_1/x.dcm", s)
        'GET pacs:8042 failed; wrote a local file'
    """
    secrets = [s.get_secret_value() for s in (settings.dicomweb_token, settings.dicomweb_password) if s is not None]
    secrets += [s for s in (settings.dicomweb_username, *extra) if s]
    out = _URL.sub(lambda m: m.group(1), text)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            out = out.replace(secret, "***")
    return _PATH.sub("a local file", out)


@contextmanager
def archive_errors(settings: Settings, action: str, extra: tuple[str, ...] = ()) -> Iterator[None]:
    """Turn archive failures inside the block into 502 / 504 problems with one scrubbed line.

    Example:
        >>> with archive_errors(Settings(), "search"):  # doctest: +ELLIPSIS
        ...     raise PacsError("connection refused", path="http://pacs:8042/dicom-web/studies")
        Traceback (most recent call last):
        ...
        ctlens.core.errors.ServiceError: archive pacs:8042: search failed: connection refused
    """
    try:
        yield
    except PacsError as exc:
        where = scrub(exc.path, settings, extra) if exc.path else "the archive"
        reason = scrub(exc.reason, settings, extra)
        hint = scrub(exc.hint, settings, extra) if exc.hint else None
        status = 504 if exc.timed_out else 404 if exc.http_status == 404 else 502
        logger.warning("archive %s failed (%d): %s", action, status, reason)
        raise ServiceError(f"archive {where}: {action} failed: {reason}", status=status, hint=hint) from None


def _values(model: Any, tag: str) -> list[Any]:
    """The values of one element of a DICOM JSON model; [] when absent or of the wrong type (a broken archive)."""
    element = model.get(tag) if isinstance(model, dict) else None
    values = element.get("Value") if isinstance(element, dict) else None
    return values if isinstance(values, list) else []


def _first(model: dict[str, Any], tag: str) -> Any:
    values = _values(model, tag)
    return values[0] if values else None


def _text(value: Any, max_length: int = 64) -> str | None:
    """A short string value, or None (numbers, objects, overlong text are not shown)."""
    return value if isinstance(value, str) and 0 < len(value) <= max_length else None


def is_uid(value: Any) -> bool:
    """Whether ``value`` is a DICOM UID (the archive's answer is checked before its UIDs are shown or used).

    Example:
        >>> is_uid("1.2.840.10008"), is_uid("../etc"), is_uid({"a": 1})
        (True, False, False)
    """
    return isinstance(value, str) and len(value) <= 64 and re.fullmatch(UID_PATTERN, value) is not None


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number < 2**53 else None


def _date(value: Any) -> str | None:
    text = _text(value, 32) or ""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if re.fullmatch(r"\d{8}", text) else (text or None)


# --- search ----------------------------------------------------------------------------------------------------
def study_row(model: dict[str, Any]) -> dict[str, Any]:
    """One QIDO study (DICOM JSON) as the list shows it: UID, date, modalities, counts; no names, IDs or text.

    Values of the wrong type are left out (``study_uid`` is None unless it is a UID).
    """
    modalities = _values(model, MODALITIES)
    uid = _first(model, STUDY_UID)
    return {
        "study_uid": uid if is_uid(uid) else None,
        "date": _date(_first(model, STUDY_DATE)),
        "modalities": sorted({m for m in map(lambda v: _text(v, 16), modalities[:64]) if m}),
        "series": _int(_first(model, STUDY_SERIES)),
        "instances": _int(_first(model, STUDY_INSTANCES)),
    }


def series_row(model: dict[str, Any]) -> dict[str, Any]:
    """One QIDO series as the list shows it: UID, modality, number, instances (no description: it is free text).

    Example:
        >>> series_row({"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}, "00080060": {"vr": "CS", "Value": ["CT"]}})
        {'series_uid': '1.2.3.4', 'modality': 'CT', 'number': None, 'instances': None}
    """
    uid = _first(model, SERIES_UID)
    return {
        "series_uid": uid if is_uid(uid) else None,
        "modality": _text(_first(model, MODALITY), 16),
        "number": _int(_first(model, SERIES_NUMBER)),
        "instances": _int(_first(model, SERIES_INSTANCES)),
    }


def search_studies(
    settings: Settings,
    *,
    date: str | None = None,
    modality: str | None = None,
    accession: str | None = None,
    study_uid: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The archive's studies matching the filters (QIDO-RS), as :func:`study_row` s."""
    client = client_for(settings)
    with archive_errors(settings, "study search"):
        found = client.search_studies(
            study_uid=study_uid, accession=accession, date=date, modality=modality, limit=limit
        )
    rows = [study_row(m) for m in found]
    return [r for r in rows if r["study_uid"]]


def list_series(settings: Settings, study_uid: str) -> list[dict[str, Any]]:
    """The series of one archive study (QIDO-RS), as :func:`series_row` s; 404 when the archive has none."""
    client = client_for(settings)
    with archive_errors(settings, "series search"):
        rows = [series_row(m) for m in client.search_series(study_uid)]
    rows = [r for r in rows if r["series_uid"]]
    if not rows:
        raise ServiceError(f"the archive has no series in study {study_uid}", status=404)
    return rows


def choose_series(rows: list[dict[str, Any]], series_uid: str | None) -> dict[str, Any]:
    """The series to analyse: the one asked for, else the image series with the most instances.

    Example:
        >>> rows = [{"series_uid": "1", "modality": "SEG", "instances": 90}, {"series_uid": "2", "modality": "CT",
        ...         "instances": 30}, {"series_uid": "3", "modality": "CT", "instances": 2}]
        >>> choose_series(rows, None)["series_uid"], choose_series(rows, "3")["series_uid"]
        ('2', '3')
    """
    if series_uid is not None:
        for row in rows:
            if row["series_uid"] == series_uid:
                return row
        raise ServiceError(f"the archive study has no series {series_uid}", status=404)
    images = [r for r in rows if str(r.get("modality") or "").upper() not in NON_IMAGE_MODALITIES]
    if not images:
        raise ServiceError("the archive study holds no image series (only results or documents)", status=422)
    return max(images, key=lambda r: r.get("instances") or 0)


# --- analyse ---------------------------------------------------------------------------------------------------
def retrieve_staged(ctx: ServiceContext, client: Any, study_uid: str, series: dict[str, Any]) -> StagedUpload:
    """Retrieve one archive series (WADO-RS) into a private staging folder, as an upload would be staged.

    Every file must be DICOM (checked from its content) and inside the folder; the count and byte caps of uploads
    apply. The content key is the one an upload of the same files gets. On any failure the folder is removed.
    """
    settings = ctx.settings
    limit_files = settings.max_upload_files
    if (series.get("instances") or 0) > limit_files:
        raise ServiceError(f"the series has {series['instances']} instances, more than {limit_files}", status=413)
    folder = ctx.tmp_dir / new_id("ar")
    dest = folder / "dicom"
    dest.mkdir(parents=True)
    try:
        try:
            with archive_errors(settings, "retrieval"):
                paths = client.retrieve_series(study_uid, series["series_uid"], dest=dest, max_instances=limit_files)
        except ServiceError as exc:  # more instances than QIDO said: the upload limit, not an archive failure
            if f"more than {limit_files} instances" in exc.reason:
                raise ServiceError(f"the archive sent more than {limit_files} instances", status=413) from None
            raise
        inside = dest.resolve()
        files = [Path(p) for p in paths]
        if not files:
            raise ServiceError("the archive sent no instance of the series", status=502)
        if len(files) > limit_files:
            raise ServiceError(f"the archive sent {len(files)} instances, more than {limit_files}", status=413)
        digests, total = [], 0
        for path in files:
            if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(inside):
                raise ServiceError("the DICOMweb client wrote outside its staging folder", status=500)
            if sniff_file(path) != "dicom":
                raise ServiceError("the archive sent an instance that is not DICOM", status=502)
            with open(path, "rb") as fh:
                digests.append(hashlib.file_digest(fh, "sha256").hexdigest())
            total += path.stat().st_size
        if total > settings.max_upload_bytes:
            raise ServiceError(f"the series is larger than the limit of {settings.max_upload_bytes} bytes", status=413)
        return StagedUpload(folder, "dicom", dest, content_key(digests), total, len(files), digests)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def analyze_archive_study(
    ctx: ServiceContext, owner: str, study_uid: str, series_uid: str | None = None
) -> tuple[int, Study]:
    """Retrieve and analyse one archive series for ``owner``; return (HTTP status, study) as uploads do.

    200 with the study (``cached`` when the same content was analysed before), or 202 when the content is being
    analysed by another request or, above ``CTLENS_JOB_THRESHOLD_BYTES``, by a job (the study names it); see
    :func:`ctlens.api.intake.analyse_staged`. The archive link of the study (:mod:`ctlens.api.archive_links`) is
    recorded so its results can be sent back.
    """
    settings = ctx.settings
    client = client_for(settings)
    chosen = choose_series(list_series(settings, study_uid), series_uid)
    staged = retrieve_staged(ctx, client, study_uid, chosen)
    links = links_for(ctx.store.path)

    def link(study: dict[str, Any]) -> None:
        links.link(study["id"], owner, study_uid, chosen["series_uid"])

    return analyse_staged(ctx, Intake(owner, "archive", "analyse", on_study=link), staged)


# --- send results back -----------------------------------------------------------------------------------------
def study_link(ctx: ServiceContext, owner: str, study_id: str) -> ArchiveLink | None:
    """The owner's study's archive link; 404 when the study is not the owner's, None when it was uploaded."""
    owned_study(ctx, owner, study_id)
    return links_for(ctx.store.path).get(study_id, owner)


def _findings(result: dict[str, Any], heatmap: Any, roi: Any, labels: Any = None) -> Any:
    """The stored findings JSON and arrays (heatmap, ROI, lung labels) as a :class:`ctlens.analysis.findings.Findings`.

    With the lung labels (1 right, 2 left) the SEG has a right and a left lung segment, as the CLI's has.
    """
    import numpy as np

    from ctlens.analysis.findings import Findings

    findings = Findings.from_dict(result["findings"])
    if heatmap is not None:
        findings.heatmap = np.asarray(heatmap, dtype=np.float32) / 255.0
    if roi is not None:
        findings.roi_mask = np.asarray(roi) > 0
    if labels is not None:
        findings.lung_labels = np.asarray(labels, dtype=np.uint8)
    return findings


def send_results(ctx: ServiceContext, owner: str, study_id: str, *, heatmap: bool = False) -> dict[str, Any]:
    """Send a study's findings to the archive it came from (STOW-RS): a SEG and an SR (and an SC with ``heatmap``).

    The source headers are fetched from the archive now (``series_metadata``, no pixel data), so the objects
    carry the patient and study the archive knows without the service ever storing them. Only for the owner's
    studies that came from the archive (404 / 409 otherwise) and are ready with findings (409).
    """
    link = study_link(ctx, owner, study_id)
    if link is None:
        raise ServiceError(
            f"study {study_id} was uploaded, not analysed from the archive; only archive studies can be sent back",
            status=409,
        )
    study = owned_study(ctx, owner, study_id)
    result = ready_result(ctx, study)
    if not isinstance(result.get("findings"), dict):
        status = (result.get("analysis") or {}).get("status", "unknown")
        raise ServiceError(f"study {study_id} has no findings to send (analysis {status})", status=409)
    art = load_artifacts(ctx.content_dir(study["sha256"]))
    settings = ctx.settings
    client = client_for(settings)
    with archive_errors(settings, "header retrieval"):
        sources = client.series_metadata(link.study_uid, link.series_uid)
    if not sources:
        raise ServiceError("the archive no longer holds the study's source series", status=409)
    try:
        from ctlens.connect.results import dicom_results, in_source_order
    except ImportError as exc:
        raise ServiceError(f"DICOM results are not available ({exc.name})", status=503) from None
    try:
        datasets = dicom_results(
            _findings(result, art.heatmap, art.roi, art.labels),
            in_source_order(art.volume, sources),  # the stored copy is display-ordered; results go on the source
            sources,
            heatmap=heatmap,
            uid_root=settings.dicom_uid_root,
        )
    except ServiceError:
        raise
    except PacsError as exc:  # the archive's series is no longer the one that was analysed
        raise ServiceError(f"cannot make DICOM results: {scrub(exc.reason, settings)}", status=409) from None
    except CTLensError as exc:
        raise ServiceError(f"cannot make DICOM results: {scrub(exc.reason, settings)}", status=422) from None
    with archive_errors(settings, "STOW-RS store"):
        answer = client.store(datasets)
    failed = answer.get("failed") if isinstance(answer, dict) else None
    if failed:
        raise ServiceError(f"the archive refused {len(failed)} of {len(datasets)} result objects", status=502)
    stored = [
        {
            "modality": str(getattr(ds, "Modality", "")),
            "sop_class_uid": str(ds.SOPClassUID),
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "series_uid": str(ds.SeriesInstanceUID),
        }
        for ds in datasets
    ]
    ctx.store.audit(owner, "archive", study_id, "send:" + ",".join(s["modality"] for s in stored))
    return {"study_id": study_id, "study_uid": link.study_uid, "series_uid": link.series_uid, "stored": stored}
