"""Who made a ctlens result object, and its new UIDs: manufacturer, software version, algorithm identification.

Every DICOM object ctlens creates (SEG, SR, Secondary Capture) names ctlens as its manufacturer and model,
its version as the software version, and identifies the algorithm (name ``ctlens``, its version, family
"Morphological Operations": the analysis is thresholds, morphology and connected components). New UIDs are
made under the ``dicom_uid_root`` setting (``CTLENS_DICOM_UID_ROOT``) when one is given, else as
UUID-derived ``2.25.`` UIDs.

Example:
    >>> new_uid("1.2.826.0.1.3680043.10.999").startswith("1.2.826.0.1.3680043.10.999.")
    True
    >>> new_uid(None).startswith("2.25."), len(new_uid("1.2.3")) <= 64
    (True, True)
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import highdicom as hd
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from ctlens import __version__
from ctlens.core.errors import CTLensError

__all__ = [
    "MANUFACTURER",
    "MODEL_NAME",
    "MODEL_OUTPUT_NOTE",
    "algorithm_identification",
    "device_uid",
    "new_uid",
    "quiet_person_names",
    "sr_algorithm_id",
    "uid_root_or_default",
]

MANUFACTURER = "ctlens"
MODEL_NAME = "ctlens"
MODEL_OUTPUT_NOTE = "model output, not a diagnosis"
ALGORITHM_FAMILY = codes.cid7162.MorphologicalOperations
_MAX_ROOT = 40
"""Longest accepted UID root: leaves 24 characters for the unique part of a 64-character UID."""


def uid_root_or_default(uid_root: str | None) -> str | None:
    """``uid_root`` if given, else the ``dicom_uid_root`` setting, else ``None`` (``2.25.`` UIDs).

    Example:
        >>> uid_root_or_default("1.2.3")
        '1.2.3'
    """
    if uid_root:
        return uid_root
    from ctlens.core.settings import get_settings

    return get_settings().dicom_uid_root or None


def new_uid(uid_root: str | None) -> str:
    """A new, unique UID under ``uid_root`` (digits and dots), or a ``2.25.`` UID when it is ``None``.

    Example:
        >>> new_uid("1.2.3") != new_uid("1.2.3")
        True
    """
    if not uid_root:
        return str(generate_uid(prefix=None))
    root = uid_root.strip().rstrip(".")
    parts = root.split(".")
    if len(root) > _MAX_ROOT or not all(p.isdigit() and (p == "0" or not p.startswith("0")) for p in parts):
        raise CTLensError(
            f"dicom_uid_root {uid_root!r} is not a valid UID root",
            hint=f"use digits and dots only, no leading zeros, at most {_MAX_ROOT} characters, e.g. 1.2.826.0.1.3680",
        )
    return str(generate_uid(prefix=root + "."))


def algorithm_identification() -> hd.AlgorithmIdentificationSequence:
    """The Segment Algorithm Identification of ctlens (name, version, family).

    Example:
        >>> algorithm_identification()[0].AlgorithmName
        'ctlens'
    """
    return hd.AlgorithmIdentificationSequence(name=MANUFACTURER, family=ALGORITHM_FAMILY, version=__version__)


def sr_algorithm_id() -> hd.sr.AlgorithmIdentification:
    """The TID 4019 Algorithm Identification of ctlens, for SR measurement groups.

    Example:
        >>> [item.TextValue for item in sr_algorithm_id()][0]
        'ctlens'
    """
    return hd.sr.AlgorithmIdentification(name=MANUFACTURER, version=__version__)


@contextlib.contextmanager
def quiet_person_names() -> Iterator[None]:
    """Silence highdicom's warning about one-component person names: they are the source's, copied as they are.

    Example:
        >>> with quiet_person_names():
        ...     pass
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        yield


def device_uid() -> str:
    """A stable UID for ctlens as the observing device of SR reports (the same on every host and run).

    Example:
        >>> device_uid() == device_uid(), device_uid().startswith("2.25.")
        (True, True)
    """
    from ctlens.io.uid_hash import hash_uid

    return hash_uid(f"{MANUFACTURER} {MODEL_NAME} device")
