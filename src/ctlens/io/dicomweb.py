"""DICOMweb client: QIDO-RS search, WADO-RS metadata and retrieval, STOW-RS store, with hard limits.

Built on :class:`~ctlens.io.dicomweb_http.DicomWebConnection` (httpx with timeouts, an overall deadline,
retries, byte limits and one-line errors). Retrieved instances stream to disk part by part
(:mod:`ctlens.io.multipart`); a failed retrieval leaves nothing behind. Searches are patient-free: studies are
found by UID, accession number, date and modality only. ``ctlens.load("dicomweb+http://...", study=...)``
and :func:`pull_series` use it with the ``dicomweb_*`` settings.

Example:
    >>> client = DicomWebClient("dicomweb+http://user:secret@pacs.example:8042/dicom-web/")
    >>> client.url, client.username
    ('http://pacs.example:8042/dicom-web', 'user')
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from ctlens.core.errors import InputNotFoundError, PacsError
from ctlens.io.dicomweb_http import DicomWebConnection, ProgressCallback
from ctlens.io.http_deadline import Deadline
from ctlens.io.multipart import MultipartBody, iter_parts

ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
STUDY_FIELDS = ["00080061", "00201206", "00201208", "00081030"]
"""Included in study searches: ModalitiesInStudy, NumberOfStudyRelatedSeries / Instances, StudyDescription."""
SERIES_FIELDS = ["00201209", "0008103E"]
"""Included in series searches: NumberOfSeriesRelatedInstances, SeriesDescription."""
PIXEL_TAGS = frozenset({"7FE00008", "7FE00009", "7FE00010"})

_UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")
_DATE = re.compile(r"^(\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8})$")
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
_FAILURE_REASONS = {0x0110: "processing failure", 0x0122: "SOP class not supported", 0x0124: "not authorized"}
_FAILURE_REASONS |= {0xA700: "out of resources", 0xA900: "does not match SOP class", 0xC000: "cannot understand"}


def is_uid(text: object) -> bool:
    """Whether ``text`` is a DICOM UID (digits and dots, at least two components, at most 64 characters).

    Example:
        >>> is_uid("1.2.840.10008.1.2"), is_uid("3"), is_uid("../admin")
        (True, False, False)
    """
    return isinstance(text, str) and len(text) <= 64 and _UID.match(text) is not None


def _uid(value: str, what: str) -> str:
    if not is_uid(value):
        raise PacsError(f"{value!r} is not a valid {what}", hint="a UID is digits and dots, such as 1.2.840.113619.2.1")
    return value


def dicom_json_value(model: dict[str, Any], keyword: str) -> Any:
    """The first value of an element of a DICOM JSON model by keyword (PN values as their alphabetic text).

    Example:
        >>> dicom_json_value({"00080020": {"vr": "DA", "Value": ["20240131"]}}, "StudyDate")
        '20240131'
        >>> dicom_json_value({}, "StudyDate") is None
        True
    """
    tag = pydicom.datadict.tag_for_keyword(keyword)
    element = model.get(f"{tag:08X}") if tag is not None and isinstance(model, dict) else None
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or not values:  # absent, or a server's wrong type
        return None
    if len(values) > 1:
        return "\\".join(str(v) for v in values)
    value = values[0]
    return value.get("Alphabetic") if isinstance(value, dict) else value


def _without_bulk_data(model: dict[str, Any]) -> dict[str, Any]:
    """A DICOM JSON model without bulk data (BulkDataURI elements, inline pixel data), sequences included."""
    kept: dict[str, Any] = {}
    for tag, element in model.items():
        if isinstance(element, dict):
            if "BulkDataURI" in element or (tag.upper() in PIXEL_TAGS and "InlineBinary" in element):
                continue
            if element.get("vr") == "SQ" and isinstance(element.get("Value"), list):
                items = [_without_bulk_data(i) if isinstance(i, dict) else i for i in element["Value"]]
                element = {**element, "Value": items}
        kept[tag] = element
    return kept


def _failed_instances(result: dict[str, Any]) -> list[str]:
    """``UID (reason)`` for each item of a STOW-RS answer's FailedSOPSequence (0008,1198)."""
    sequence = result.get("00081198")
    items = sequence.get("Value", []) if isinstance(sequence, dict) else sequence
    if items is None:
        return []
    if not isinstance(items, list):  # a failure list of the wrong type still says that something failed
        return ["unknown instance (malformed answer)"]
    failed = []
    for item in items:
        uid = dicom_json_value(item, "ReferencedSOPInstanceUID")
        uid = str(uid)[:64] if uid else "unknown instance"
        code = dicom_json_value(item, "FailureReason")
        known = isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 0xFFFF
        reason = _FAILURE_REASONS.get(code, f"status 0x{code:04X}") if known else "no reason given"
        failed.append(f"{uid} ({reason})")
    return failed


class DicomWebClient(DicomWebConnection):
    """A DICOMweb server at ``url`` (``http(s)://host:port/dicom-web``, ``dicomweb+`` prefix allowed).

    Auth: ``token`` (sent as ``Authorization: Bearer``) or ``username`` / ``password`` (basic auth; also taken
    from ``user:password@`` in the URL). ``timeout`` bounds connecting and each wait for bytes, ``deadline``
    a whole call (retries included), ``retries`` the repeats after connection errors and 502/503/504,
    ``max_bytes`` one retrieval.

    Example:
        >>> DicomWebClient("https://pacs.example/dicom-web", token="t", deadline=60).deadline
        60.0
    """

    @classmethod
    def from_settings(cls, url: str | None = None) -> DicomWebClient:
        """A client for ``url`` (default: the ``dicomweb_url`` setting) with the ``dicomweb_*`` settings.

        Example:
            >>> DicomWebClient.from_settings("http://127.0.0.1:8042/dicom-web").retries >= 0
            True
        """
        from ctlens.core.settings import get_settings

        settings = get_settings()
        url = url or settings.dicomweb_url
        if not url:
            raise PacsError("no DICOMweb server given", hint="pass the server's URL or set CTLENS_DICOMWEB_URL")
        token, password = settings.dicomweb_token, settings.dicomweb_password
        return cls(
            url,
            token=token.get_secret_value() if token else None,
            username=settings.dicomweb_username,
            password=password.get_secret_value() if password else None,
            timeout=settings.dicomweb_timeout,
            deadline=settings.dicomweb_deadline,
            retries=settings.dicomweb_retries,
            max_bytes=settings.dicomweb_max_bytes,
        )

    # --- QIDO-RS and metadata ----------------------------------------------------------------------------------

    def search_studies(
        self,
        *,
        study_uid: str | None = None,
        accession: str | None = None,
        date: str | None = None,
        modality: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """QIDO-RS ``/studies`` by UID, accession number, date (``YYYYMMDD`` or ``A-B`` range) and/or modality.

        Example:
            >>> client = DicomWebClient("http://127.0.0.1:8042/dicom-web")
            >>> studies = client.search_studies(modality="CT", date="20240101-20241231")  # doctest: +SKIP
        """
        params: dict[str, Any] = {"includefield": STUDY_FIELDS}
        if study_uid:
            params["StudyInstanceUID"] = _uid(study_uid, "StudyInstanceUID")
        if accession:
            params["AccessionNumber"] = accession
        if date:
            if not _DATE.match(date):
                raise PacsError(f"{date!r} is not a DICOM date", hint="use YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
            params["StudyDate"] = date
        if modality:
            if not _MODALITY.match(modality.upper()):
                raise PacsError(f"{modality!r} is not a DICOM modality", hint="use a code such as CT or MR")
            params["ModalitiesInStudy"] = modality.upper()
        if limit is not None:
            params["limit"] = max(int(limit), 1)
        return self._get_json("/studies", params)

    def search_series(self, study_uid: str, *, modality: str | None = None) -> list[dict[str, Any]]:
        """QIDO-RS: the series of one study (optionally of one modality)."""
        params: dict[str, Any] = {"includefield": SERIES_FIELDS}
        if modality:
            params["Modality"] = modality.upper()
        return self._get_json(f"{self._series_path(study_uid, None)}/series", params)

    def search_instances(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS: the instances of one series."""
        return self._get_json(f"{self._series_path(study_uid, series_uid)}/instances")

    def series_metadata(self, study_uid: str, series_uid: str) -> list[pydicom.Dataset]:
        """WADO-RS ``/metadata``: one header-only dataset per instance (bulk data such as pixels left out)."""
        path = f"{self._series_path(study_uid, series_uid)}/metadata"
        datasets = []
        for model in self._get_json(path):
            try:
                datasets.append(pydicom.Dataset.from_json(_without_bulk_data(model)))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
                raise PacsError(
                    f"instance metadata is not valid DICOM JSON ({detail})",
                    path=self.url + path,
                    hint="the server sent malformed metadata; report it to the archive's administrator",
                ) from None
        return datasets

    # --- WADO-RS retrieval -------------------------------------------------------------------------------------

    def retrieve_series(
        self,
        study_uid: str,
        series_uid: str | None = None,
        dest: str | os.PathLike[str] | None = None,
        *,
        progress: ProgressCallback | None = None,
        max_instances: int | None = None,
    ) -> list[Path]:
        """WADO-RS: stream a series (the whole study when ``series_uid`` is None) into ``dest``, one file each.

        Files are named ``<SOPInstanceUID>.dcm``; each is written under a temporary name and renamed when
        complete. Every part must be a DICOM instance of the requested study (and series); an answer with more
        than ``max_instances`` parts is refused as soon as the next part arrives. On any failure every file this
        call wrote is removed (files that were in ``dest`` before are kept) and PacsError raised.

        Example:
            >>> client = DicomWebClient("http://127.0.0.1:8042/dicom-web")
            >>> files = client.retrieve_series("1.2.3", "1.2.3.4", "out/")  # doctest: +SKIP
        """
        if dest is None:
            raise TypeError("retrieve_series() needs dest, the folder to write the instances to")
        path = self._series_path(study_uid, series_uid)
        folder, where = Path(dest), self.url + path
        created = not folder.exists()
        written: dict[Path, None] = {}
        kept: set[Path] = set()  # files that were in dest before this call: never removed on failure
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with Deadline(self.deadline) as deadline, self._send(path, deadline, accept=ACCEPT_DICOM) as response:
                content_type = response.headers.get("content-type", "")
                total = self._check_length(response, self.max_bytes, where)
                chunks = self._chunks(response, deadline, where, self.max_bytes, progress, total)
                parts = iter_parts(
                    chunks, content_type, folder, part_type="application/dicom", max_bytes=self.max_bytes, source=where
                )
                for part in parts:
                    written[part.path] = None
                    if max_instances is not None and part.index >= max_instances:
                        raise PacsError(
                            f"the answer holds more than {max_instances} instances",
                            path=where,
                            hint="retrieve a smaller series, or raise the limit on instances",
                        )
                    final = folder / _instance_name(part.path, part.index, where, study_uid, series_uid)
                    if final not in written and final.exists():
                        kept.add(final)
                    os.replace(part.path, final)
                    del written[part.path]
                    written[final] = None
            if not written:
                raise PacsError("the server sent no instances", path=where, hint="check the UIDs")
            return list(written)
        except BaseException as exc:
            for item in written:
                if item not in kept:
                    item.unlink(missing_ok=True)
            if created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if isinstance(exc, OSError):
                raise PacsError(
                    f"cannot write the retrieved instances: {exc.strerror or exc}",
                    path=folder,
                    hint="check free disk space and folder permissions",
                ) from None
            raise

    # --- STOW-RS -----------------------------------------------------------------------------------------------

    def store(self, items: Iterable[str | os.PathLike[str] | pydicom.Dataset]) -> dict[str, Any]:
        """STOW-RS ``POST /studies``: send DICOM files and/or datasets; the server's answer (DICOM JSON).

        Raises PacsError naming the instances in the answer's FailedSOPSequence, if any.

        Example:
            >>> DicomWebClient("http://127.0.0.1:8042/dicom-web").store(["a.dcm", "b.dcm"])  # doctest: +SKIP
        """
        bodies = [_stow_item(item, n) for n, item in enumerate(items)]
        where = self.url + "/studies"
        if not bodies:
            raise PacsError("nothing to store", path=where, hint="give at least one DICOM file or dataset")
        body = MultipartBody(bodies, "application/dicom")
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.length)}
        with (
            Deadline(self.deadline) as deadline,
            self._send("/studies", deadline, method="POST", headers=headers, body=body, also_ok=(409,)) as response,
        ):
            status = response.status_code
            result = self._read_json(response, deadline, where)
        if isinstance(result, list) and len(result) == 1:
            result = result[0]
        if not isinstance(result, dict):
            raise PacsError("the STOW-RS answer is not a DICOM JSON dataset", path=where)
        failed = _failed_instances(result)
        if failed or status == 409:
            shown = "; ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
            raise PacsError(
                f"the server refused {len(failed) or 'some'} of {len(bodies)} instance(s): {shown or 'HTTP 409'}",
                path=where,
                hint="see the reasons; the server's log has details",
            )
        return result

    def _series_path(self, study_uid: str, series_uid: str | None) -> str:
        """``/studies/<uid>/series/<uid>`` (the study's path when ``series_uid`` is None), UIDs checked."""
        study = f"/studies/{_uid(study_uid, 'StudyInstanceUID')}"
        return f"{study}/series/{_uid(series_uid, 'SeriesInstanceUID')}" if series_uid else study


def _instance_name(path: Path, index: int, where: str, study_uid: str, series_uid: str | None) -> str:
    """``<SOPInstanceUID>.dcm`` for a received part (``instance-<n>.dcm`` when that is not a UID); PacsError when
    the part is not a DICOM file or belongs to another study or series than the one asked for."""
    tags = ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
    except (InvalidDicomError, ValueError, EOFError, OSError, TypeError, AttributeError) as exc:
        raise PacsError(
            f"part {index + 1} of the answer is not a DICOM instance ({str(exc)[:200]})",
            path=where,
            hint="the server sent something other than DICOM files",
        ) from None
    for keyword, wanted in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid)):
        got = str(header.get(keyword, "") or "")
        if wanted is not None and got != wanted:
            raise PacsError(
                f"part {index + 1} of the answer belongs to another {keyword[:-11].lower()} ({got[:64]!r})",
                path=where,
                hint="the server sent instances that were not asked for; report it to the archive's administrator",
            )
    uid = str(header.get("SOPInstanceUID", ""))
    return f"{uid}.dcm" if is_uid(uid) else f"instance-{index + 1:05d}.dcm"


def _stow_item(item: str | os.PathLike[str] | pydicom.Dataset, index: int) -> bytes | Path:
    """A STOW-RS part: a file's path (streamed) or a dataset encoded as a DICOM file."""
    if isinstance(item, pydicom.Dataset):
        out = io.BytesIO()
        try:
            pydicom.dcmwrite(out, item, enforce_file_format=True)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise PacsError(
                f"dataset {index + 1} cannot be encoded as a DICOM file ({exc})",
                hint="give it file meta (TransferSyntaxUID) and SOPClassUID / SOPInstanceUID",
            ) from None
        return out.getvalue()
    path = Path(item)
    if not path.is_file():
        raise InputNotFoundError("no such DICOM file to store", path=path, hint="check the path")
    return path


def pull_series(
    url: str, study: str, series: str | None, dest: str | os.PathLike[str], *, progress: ProgressCallback | None = None
) -> Path:
    """Retrieve a series (the whole study when ``series`` is None) from a DICOMweb server into ``dest``.

    Auth, timeouts and limits come from the ``dicomweb_*`` settings; ``url`` may carry the ``dicomweb+`` prefix.
    Returns ``dest``, which then holds one ``<SOPInstanceUID>.dcm`` per instance (nothing on failure).

    Example:
        >>> pull_series("dicomweb+http://127.0.0.1:8042/dicom-web", "1.2.3", "1.2.3.4", "headers/")  # doctest: +SKIP
    """
    DicomWebClient.from_settings(url).retrieve_series(study, series, dest, progress=progress)
    return Path(dest)
