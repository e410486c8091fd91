"""UID hashing and metadata de-identification: :func:`hash_uid` and :func:`deidentify_meta`.

:func:`hash_uid` gives the stable ``2.25.<decimal>`` replacement of a UID that both the DICOM file
de-identification (:mod:`ctlens.io.deid`) and the readers use, so a series' hashed UID in ``Volume.meta``
matches the UID in its de-identified files. :func:`deidentify_meta` is the one rule for the small metadata
dicts ctlens passes around: the DICOM reader applies it to the ``meta`` it returns (see
:mod:`ctlens.io.dicom_reader`; the other readers' meta hold only file-format facts), and nothing downstream
re-runs it.

Example:
    >>> hash_uid("1.2.3") == hash_uid("1.2.3") != hash_uid("1.2.4")
    True
    >>> deidentify_meta({"PatientName": "Doe^Jane", "kernel": "B30f"})
    {'kernel': 'B30f'}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from ctlens.io.deid_profile import DICOM_UID_ROOT, PROFILE_ACTIONS

__all__ = ["FORBIDDEN_META_KEYS", "deidentify_meta", "hash_uid"]

_UID_ROOT = "2.25."


def hash_uid(uid: str, salt: str = "") -> str:
    """A stable replacement UID (``2.25.<decimal>``, at most 64 characters) for ``uid``."""
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
    Nested dicts are cleaned the same way; ``meta`` is not changed.

    Example:
        >>> deidentify_meta({"patient_name": "Doe^Jane", "PatientID": "123", "manufacturer": "ACME",
        ...                  "series_uid": "2.25.1", "study_uid": "1.2.3"}) == {
        ...     "manufacturer": "ACME", "series_uid": "2.25.1", "study_uid": hash_uid("1.2.3")}
        True
    """
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if _is_forbidden_key(key):
            continue
        if isinstance(value, Mapping):
            out[key] = deidentify_meta(value)
        elif _norm(key).endswith("uid") or _norm(key).endswith("uids"):
            out[key] = _hash_meta_uid(value)
        else:
            out[key] = value
    return out
