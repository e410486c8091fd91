"""UID hashing and metadata de-identification: :func:`hash_uid`, the installation salt and :func:`deidentify_meta`.

:func:`hash_uid` gives the stable ``2.25.<decimal>`` replacement of a UID that both the DICOM file
de-identification (:mod:`ctlens.io.deid`) and the readers use, so a series' hashed UID in ``Volume.meta``
matches the UID in its de-identified files. The hash is salted: without an explicit ``salt`` it uses the
*installation salt* (:func:`set_installation_salt`; the service sets it from its secret, otherwise the
``CTLENS_UID_SALT`` environment variable, otherwise none), so whoever holds the original UIDs cannot link the
hashed ones of another installation. Same UID and same salt give the same hash; another salt another hash.

:func:`deidentify_meta` is the one rule for the small metadata dicts ctlens passes around: the DICOM reader
applies it to the ``meta`` it returns (see :mod:`ctlens.io.dicom_reader`; the other readers' meta hold only
file-format facts), and nothing downstream re-runs it. Besides dropping identifying keys and hashing UIDs it
cleans free text (descriptions, protocol names, comments, contrast agent, the series label in
``series_selection`` and in warnings) with :func:`ctlens.io.clean_descriptor.clean_descriptor` (PS3.15 Clean
Descriptors), so stored results, exports and API answers carry no names hidden in a description.

Example:
    >>> hash_uid("1.2.3") == hash_uid("1.2.3") != hash_uid("1.2.4")
    True
    >>> hash_uid("1.2.3", "site-a") != hash_uid("1.2.3", "site-b")
    True
    >>> deidentify_meta({"PatientName": "Doe^Jane", "kernel": "B30f", "contrast_agent": "IV CONTRAST Doe^J"})
    {'kernel': 'B30f', 'contrast_agent': 'IV CONTRAST'}
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

from ctlens.io.clean_descriptor import clean_descriptor
from ctlens.io.deid_profile import DICOM_UID_ROOT, PROFILE_ACTIONS

__all__ = [
    "FORBIDDEN_META_KEYS",
    "clean_series_labels",
    "deidentify_meta",
    "hash_uid",
    "installation_salt",
    "set_installation_salt",
]

_UID_ROOT = "2.25."
SALT_ENV = "CTLENS_UID_SALT"
_installation_salt: str | None = None
_env_before: tuple[bool, str] | None = None
"""``CTLENS_UID_SALT`` as it was before :func:`set_installation_salt` exported a salt (restored by ``None``)."""


def set_installation_salt(salt: str | None) -> None:
    """Make ``salt`` the default salt of :func:`hash_uid` in this process and in the processes it starts
    (``CTLENS_UID_SALT`` is exported, so spawned workers, e.g. of an HDF5 export or a cache build, hash alike);
    None goes back to the environment as it was.

    Example:
        >>> set_installation_salt("s1"); a = hash_uid("1.2.3"); set_installation_salt(None)
        >>> a == hash_uid("1.2.3", "s1")
        True
    """
    global _installation_salt, _env_before
    if salt is not None and _env_before is None:
        _env_before = (SALT_ENV in os.environ, os.environ.get(SALT_ENV, ""))
    _installation_salt = salt
    if salt is not None:
        os.environ[SALT_ENV] = salt
    elif _env_before is not None:
        was_set, value = _env_before
        if was_set:
            os.environ[SALT_ENV] = value
        else:
            os.environ.pop(SALT_ENV, None)
        _env_before = None


def installation_salt() -> str:
    """The default salt of :func:`hash_uid`: the one set in this process, else ``$CTLENS_UID_SALT``, else ``""``.

    Example:
        >>> isinstance(installation_salt(), str)
        True
    """
    if _installation_salt is not None:
        return _installation_salt
    return os.environ.get(SALT_ENV, "")


def hash_uid(uid: str, salt: str | None = None) -> str:
    """A stable replacement UID (``2.25.<decimal>``, at most 64 characters) for ``uid`` salted with ``salt``.

    ``salt=None`` uses :func:`installation_salt`.

    Example:
        >>> hash_uid("1.2.3", "") == hash_uid("1.2.3", "") != hash_uid("1.2.3", "x")
        True
    """
    if salt is None:
        salt = installation_salt()
    digest = hashlib.sha256((salt + str(uid)).encode()).digest()
    return _UID_ROOT + str(int.from_bytes(digest[:16], "big"))


def _snake(keyword: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", keyword).lower()


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


_EXTRA_FORBIDDEN = (
    "name",
    "patient",
    "birth_date",
    "date_of_birth",
    "dob",
    "birthdate",
    "age",
    "sex",
    "address",
    "phone",
    "telephone",
    "email",
    "mrn",
    "ssn",
    "accession",
    "study_id",
    "institution",
    "institution_name",
    "hospital",
    "physician",
    "referring_physician",
    "performing_physician",
    "operator",
    "operators",
    "operator_name",
    "station",
    "serial_number",
)
_IDENTIFYING_KEYWORDS = sorted(k for k, a in PROFILE_ACTIONS.items() if a in ("X", "Z", "D"))

#: Metadata keys :func:`deidentify_meta` drops: the profile's X/Z/D keywords, their snake_case forms, and common
#: names for identifiers. Matching ignores case, ``_``, ``-`` and spaces.
FORBIDDEN_META_KEYS: frozenset[str] = frozenset(
    [*_IDENTIFYING_KEYWORDS, *(_snake(k) for k in _IDENTIFYING_KEYWORDS), *_EXTRA_FORBIDDEN]
)
_FORBIDDEN_NORM = frozenset(_norm(k) for k in FORBIDDEN_META_KEYS)
# Fragments that make a key identifying wherever they occur in it (normalized form).
_FORBIDDEN_FRAGMENTS = (
    "patientname",
    "patientid",
    "birth",
    "address",
    "phone",
    "email",
    "physician",
    "operatorsname",
    "operatorname",
    "institution",
    "accession",
    "medicalrecord",
    "otherpatient",
    "studyid",
    "stationname",
    "serialnumber",
)


def _is_forbidden_key(key: str) -> bool:
    norm = _norm(key)
    if norm.endswith("uid"):
        return False
    return norm in _FORBIDDEN_NORM or any(fragment in norm for fragment in _FORBIDDEN_FRAGMENTS)


# Keys whose values are free text (normalized form fragments): cleaned to allow-listed words.
_FREE_TEXT_FRAGMENTS = ("description", "comment", "protocol", "contrastagent", "descriptor", "bolusagent")
# The series label of ctlens.io.dicom_series.SeriesInfo.label(): "#0 'description' (CT, axial, 8 slices 32x32, kernel
# B30f)". The description may hold anything; the parts around it are fixed.
_LABEL = re.compile(
    r"#(?P<index>\d+) '(?P<description>.*?)' \((?P<modality>[^,()']*), "
    r"(?P<orientation>axial|coronal|sagittal|oblique), "
    r"(?P<slices>\d+) slices (?P<rows>\d+)x(?P<columns>\d+), kernel (?P<kernel>[^()']*)\)",
    re.DOTALL,
)


def clean_series_labels(text: str) -> str:
    """``text`` with the description inside every series label (``#0 'description' (CT, ...)``) cleaned.

    Example:
        >>> clean_series_labels("picked #0 'Doe^Jane CHEST' (CT, axial, 8 slices 32x32, kernel B30f) by index")
        "picked #0 'CHEST' (CT, axial, 8 slices 32x32, kernel B30f) by index"
    """

    def clean(match: re.Match[str]) -> str:
        description = clean_descriptor(match["description"], extra_words=[match["kernel"]])
        return (
            f"#{match['index']} '{description}' ({match['modality']}, {match['orientation']}, "
            f"{match['slices']} slices {match['rows']}x{match['columns']}, kernel {match['kernel']})"
        )

    return _LABEL.sub(clean, text) if "'" in text else text


def _clean_text(value: Any, kernel: str) -> Any:
    if isinstance(value, str):
        return clean_descriptor(value, extra_words=[kernel])
    if isinstance(value, list | tuple):
        return type(value)(_clean_text(v, kernel) for v in value)
    return value


def _clean_labels(value: Any) -> Any:
    if isinstance(value, str):
        return clean_series_labels(value)
    if isinstance(value, list | tuple):
        return type(value)(_clean_labels(v) for v in value)
    return value


def _hash_meta_uid(value: Any) -> Any:
    if isinstance(value, str):
        if not value or value.startswith(_UID_ROOT) or value.startswith(DICOM_UID_ROOT):
            return value
        return hash_uid(value)
    if isinstance(value, list | tuple):
        return type(value)(_hash_meta_uid(v) for v in value)
    return value


def deidentify_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``meta`` without identifying keys and with UID values hashed.

    Keys in :data:`FORBIDDEN_META_KEYS` (compared ignoring case and separators) or containing an identifying
    fragment (``birth``, ``address``, ``physician``, ...) are dropped. Values of keys ending in ``uid`` are
    replaced by :func:`hash_uid` unless already hashed (``2.25.``) or defined by DICOM (``1.2.840.10008.``).
    Values of free-text keys (``*description*``, ``*comment*``, ``*protocol*``, ``contrast_agent``) keep only
    allow-listed words (:func:`~ctlens.io.clean_descriptor.clean_descriptor`, the series' kernel allowed), and
    series labels in any other text (``series_selection``, warnings) get their description cleaned the same way.
    Nested dicts are cleaned the same way; ``meta`` is not changed.

    Example:
        >>> deidentify_meta({"patient_name": "Doe^Jane", "PatientID": "123", "manufacturer": "ACME",
        ...                  "series_uid": "2.25.1", "study_uid": "1.2.3"}) == {
        ...     "manufacturer": "ACME", "series_uid": "2.25.1", "study_uid": hash_uid("1.2.3")}
        True
    """
    out: dict[str, Any] = {}
    kernel = str(meta.get("kernel") or "")
    for key, value in meta.items():
        if _is_forbidden_key(key):
            continue
        norm = _norm(key)
        if isinstance(value, Mapping):
            out[key] = deidentify_meta(value)
        elif norm.endswith("uid") or norm.endswith("uids"):
            out[key] = _hash_meta_uid(value)
        elif any(fragment in norm for fragment in _FREE_TEXT_FRAGMENTS):
            out[key] = _clean_text(value, kernel)
        else:
            out[key] = _clean_labels(value)
    return out
