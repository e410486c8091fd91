"""The one error family of ctlens.

Every message says what failed, for which file or series, why, and what to do.

Example:
    >>> from ctlens.core.errors import CorruptFileError
    >>> str(CorruptFileError("truncated pixel data", path="a.dcm", hint="re-export the series"))
    'a.dcm: truncated pixel data (re-export the series)'
"""

from __future__ import annotations

import re
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters that would break a one-line message (line ends, tabs, terminal escapes)."""


class CTLensError(Exception):
    """Base class: a failure the user can act on, never a bare traceback."""

    def __init__(self, reason: str, *, path: str | Path | None = None, hint: str | None = None) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The error on one line: control characters from file or member names (``\\n``) are shown escaped."""
        text = f"{self.path}: {self.reason}" if self.path else self.reason
        text = f"{text} ({self.hint})" if self.hint else text
        return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class InputNotFoundError(CTLensError):
    """The path does not exist or holds nothing ctlens can read."""


class UnsupportedFormatError(CTLensError):
    """The file exists but its format is not one ctlens reads or writes."""


class CorruptFileError(CTLensError):
    """A file is truncated, empty or not what its name or header claims."""


class UnsafeArchiveError(CTLensError):
    """An archive tries to escape its folder, links outside, or expands too much."""


class SeriesSelectionError(CTLensError):
    """No series, or not the requested one, could be chosen from the input."""


class GeometryError(CTLensError):
    """Slice positions cannot form the volume that was asked for."""


class GantryTiltError(GeometryError):
    """The series is acquired with gantry tilt and tilt correction was refused."""


class UnevenSpacingError(GeometryError):
    """Slices are unevenly spaced (or missing) and the caller asked for an error."""


class MissingDependencyError(CTLensError):
    """An optional dependency (an extra) is needed for this operation."""


class InterpolationError(CTLensError):
    """Slice interpolation cannot run on this input (not axial, one slice, factor < 1, bad checkpoint)."""


class LLMProviderError(CTLensError):
    """An LLM provider refused or failed a request (bad key, quota, unreachable server)."""


class ServiceError(CTLensError):
    """A request to the ctlens service cannot be served; ``status`` is the HTTP status to answer with."""

    status: int = 400

    def __init__(self, reason: str, *, status: int = 400, path: str | None = None, hint: str | None = None) -> None:
        self.status = status
        super().__init__(reason, path=path, hint=hint)


class CacheError(CTLensError):
    """The preprocessed-image cache cannot do what was asked."""


class CacheMissError(CacheError):
    """A cache entry is not built (or failed, or is damaged)."""


class CacheBusyError(CacheError):
    """Another process is building the same cache."""


class PayloadBudgetError(CTLensError):
    """An LLM payload cannot be built within the token budget or the provider's request limits."""


class PacsError(CTLensError):
    """A DICOM archive (DICOMweb server, DICOM node) refused, failed, timed out or answered something unusable.

    ``http_status`` is the archive's HTTP status when it answered one; ``timed_out`` is true when the archive
    stalled past a timeout or deadline (callers map these to 404 / 502 / 504 without reading the message).

    Example:
        >>> e = PacsError("no such study", path="http://pacs/dicom-web", http_status=404)
        >>> e.http_status, e.timed_out
        (404, False)
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | Path | None = None,
        hint: str | None = None,
        http_status: int | None = None,
        timed_out: bool = False,
    ) -> None:
        self.http_status = http_status
        self.timed_out = timed_out
        super().__init__(reason, path=path, hint=hint)
