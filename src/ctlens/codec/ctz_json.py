"""The JSON export of a ``.ctz`` file (the earlier API's format): write it, read it back, and decode it directly.

``{"format": "ctlens-ctz-json", "version": 1, "header": {...}, "stats": {...}, "encoding": "base64",
"ctz_base64": "<the exact .ctz file>"}`` (docs/ctz_format.md). On import the embedded file is authoritative: it
passes every check of :func:`ctlens.codec.header_rules.open_checked` and the whole-file checksum before the
``.ctz`` appears, and every error names the JSON file, never a temporary path.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from ctlens.codec.series import encode_volume
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = encode_volume(np.ones((1, 2, 2), np.int16), d / "a.ctz")
    >>> export_json(d / "a.ctz", d / "a.json"); is_json_export(d / "a.json"), is_json_export(d / "a.ctz")
    (True, False)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ctlens.codec.header_rules import open_checked
from ctlens.core.errors import CorruptFileError, CTLensError
from ctlens.io.files import atomic_output

__all__ = ["JSON_FORMAT", "as_ctz", "export_json", "import_json", "is_json_export"]

JSON_FORMAT = "ctlens-ctz-json"


def export_json(ctz_path: str | Path, json_path: str | Path) -> None:
    """Write a ``.ctz`` file as JSON (header for people + the exact file as base64) for the earlier API's users.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> from ctlens.codec.series import encode_volume
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = encode_volume(np.ones((1, 2, 2), np.int16), d / "a.ctz")
        >>> export_json(d / "a.ctz", d / "a.json"); import_json(d / "a.json", d / "b.ctz")
        >>> (d / "a.ctz").read_bytes() == (d / "b.ctz").read_bytes()
        True
    """
    reader, _ = open_checked(ctz_path)
    reader.verify()
    doc = {
        "format": JSON_FORMAT,
        "version": 1,
        "header": reader.header,
        "stats": reader.trailer.get("stats", {}),
        "encoding": "base64",
        "ctz_base64": base64.b64encode(Path(ctz_path).read_bytes()).decode("ascii"),
    }
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(doc))


def _renamed(exc: CTLensError, path: str | Path, prefix: str) -> CTLensError:
    """The same error, naming ``path`` (the user's file) instead of a temporary one."""
    out = copy.copy(exc)
    out.path, out.reason = str(path), prefix + exc.reason
    out.args = (out.one_line(),)
    return out


def import_json(json_path: str | Path, ctz_path: str | Path) -> None:
    """Turn a JSON export back into a ``.ctz`` file (checked before it is moved into place).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "x.json").write_text('{"format": "ctlens-ctz-json", "ctz_base64": "AAAA"}')
        >>> import_json(d / "x.json", d / "x.ctz")
        Traceback (most recent call last):
        ...
        ctlens.core.errors.CorruptFileError: .../x.json: embedded .ctz is damaged: truncated: ...
    """
    try:
        doc = json.loads(Path(json_path).read_bytes())
        if not isinstance(doc, dict):
            raise ValueError(f"the document is a JSON {type(doc).__name__}, not an object")
        if doc.get("format") != JSON_FORMAT:
            raise ValueError(f"format is {str(doc.get('format'))[:40]!r}, expected {JSON_FORMAT!r}")
        text = doc.get("ctz_base64")
        if not isinstance(text, str):
            raise ValueError("ctz_base64 is missing or not a text")
        data = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:  # bad UTF-8, JSON or base64
        raise CorruptFileError(f"not a ctlens .ctz JSON export ({str(exc)[:200]})", path=json_path) from None
    except RecursionError:
        raise CorruptFileError("not a ctlens .ctz JSON export (nested too deeply)", path=json_path) from None
    except OSError as exc:
        raise CorruptFileError(f"cannot read the file ({exc.strerror or exc})", path=json_path) from None
    with atomic_output(ctz_path) as tmp:
        tmp.write_bytes(data)
        del data
        try:
            reader, _ = open_checked(tmp)
            reader.verify()
        except CTLensError as exc:
            raise _renamed(exc, json_path, "embedded .ctz is damaged: ") from None


def is_json_export(path: str | Path) -> bool:
    """True when ``path`` is a file whose first non-blank byte is ``{`` (a JSON export, not a ``.ctz``).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.json"; _ = p.write_text('  {"format": 1}')
        >>> is_json_export(p), is_json_export(p.with_name("missing"))
        (True, False)
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return head.lstrip(b" \t\r\n\xef\xbb\xbf").startswith(b"{")


@contextlib.contextmanager
def as_ctz(path: str | Path) -> Iterator[Path]:
    """``path`` itself for a ``.ctz``; for a JSON export, a checked temporary ``.ctz`` (errors name ``path``).

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> from ctlens.codec.series import encode_volume, read_info
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = encode_volume(np.ones((3, 2, 2), np.int16), d / "a.ctz"); export_json(d / "a.ctz", d / "a.json")
        >>> with as_ctz(d / "a.json") as ctz:
        ...     read_info(ctz)["n_slices"]
        3
    """
    if not is_json_export(path):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
        ctz = Path(tmp) / "export.ctz"
        import_json(path, ctz)
        try:
            yield ctz
        except CTLensError as exc:
            if exc.path is None or exc.path != str(ctz):
                raise
            raise _renamed(exc, path, "") from None
