"""De-identification (DICOM PS3.15 Basic Application Level Confidentiality Profile).

Example:
    >>> hash_uid("1.2.3") == hash_uid("1.2.3") != hash_uid("1.2.4")
    True
"""

from __future__ import annotations

import hashlib

_UID_ROOT = "2.25."


def hash_uid(uid: str, salt: str = "") -> str:
    """A stable replacement UID (``2.25.<decimal>``, at most 64 characters) for ``uid``."""
    digest = hashlib.sha256((salt + str(uid)).encode()).digest()
    return _UID_ROOT + str(int.from_bytes(digest[:16], "big"))
