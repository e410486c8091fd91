"""Text headers of NRRD (``.nrrd``, ``.nhdr``) and MetaImage (``.mha``, ``.mhd``) read by ctlens itself, so the
files a header names (its *data files*) can be checked before SimpleITK opens anything.

Both formats may put the voxels in other files: NRRD's ``data file:`` field (one name, ``LIST`` then one name per
line, or a printf pattern ``fmt min max step [subdim]``) and MetaImage's ``ElementDataFile`` (``LOCAL``, one name,
``LIST`` or the same kind of pattern). A name is relative to the header's folder or absolute. :func:`check_data_files`
accepts only names that stay inside a given folder, resolved without following links.

The header is parsed line by line the way the readers do it (teem for NRRD, MetaIO for MetaImage), and
conservatively where they are lax:

- NRRD: the magic line, then ``field: value`` lines (field names compared case-insensitively, spaces and
  underscores ignored) and ``#`` comments until an empty line or the end of the file; every field that reads as
  ``data file`` is checked; ``data file: LIST`` ends the header. A line with no ``field:`` form, or a field line
  longer than :data:`NRRD_MAX_LINE` characters, is refused (teem refuses the first and quotes both in a fixed
  message buffer: the process died).
- Patterns (both formats): exactly one integer conversion, with a field width of at most :data:`MAX_NAME`.
- MetaImage: ``Key = Value`` (or ``Key: Value``) lines; the key is the text before the first ``=`` / ``:``, so
  ``Comment = ElementDataFile = LOCAL`` is a comment. ``ElementDataFile`` ends the header. Lines MetaIO would
  misread (no separator: MetaIO then takes the next line's value; 500 characters or more; NUL or a carriage return
  inside) are refused instead of guessed.

Example:
    >>> info = parse_header(b"NRRD0004\\ntype: short\\nsizes: 2 3\\ndimension: 2\\nencoding: raw\\ndata file: v.raw\\n")
    >>> info.data_files, info.declared_bytes, info.compressed
    (['v.raw'], 12, False)
    >>> trick = b"ObjectType = Image\\nComment = ElementDataFile = LOCAL\\nElementDataFile = /etc/passwd\\n"
    >>> parse_header(trick).data_files
    ['/etc/passwd']
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ctlens.core.errors import CorruptFileError, UnsafeArchiveError

__all__ = ["HeaderInfo", "check_data_files", "parse_header", "read_header"]

MAX_HEADER_BYTES = 1 << 20
"""Longest text header read (a longer one, padded or not, is refused: real headers are a few hundred bytes)."""
MAX_DATA_FILES = 100_000
"""Most data files one header may name (LIST or pattern)."""
METAIO_MAX_LINE = 500
"""MetaIO reads keys and values into 500-character buffers; longer lines are misread, so they are refused."""
METAIO_MAX_DIM = 10
"""MetaIO keeps sizes and spacings in arrays of 10 axes; a larger ``NDims`` overflows them (a crash, not an error)."""
NRRD_MAX_LINE = 512
"""Longest NRRD field line accepted (comments and ``key:=value`` lines excepted): teem quotes a line it cannot
use in a fixed 1025-byte message buffer, so a field line near 1000 characters with a bad value or an unknown field
name overwrites memory and kills the process (found by fuzzing). Real field lines are under 300 characters."""
NRRD_MAX_DIM = 16
"""teem's ``NRRD_DIM_MAX``."""

_NRRD_TYPES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort", "unsigned short",
        "unsigned short int", "uint16", "uint16_t"),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t",
        "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "double"),
}  # fmt: skip
_NRRD_ITEMSIZE = {name: size for size, names in _NRRD_TYPES.items() for name in names}
_META_ITEMSIZE = {"CHAR": 1, "UCHAR": 1, "SHORT": 2, "USHORT": 2, "INT": 4, "UINT": 4, "LONG": 4, "ULONG": 4,
                  "LONG_LONG": 8, "ULONG_LONG": 8, "FLOAT": 4, "DOUBLE": 8}  # fmt: skip
_NRRD_ENCODINGS = {"txt": "ascii", "text": "ascii", "gz": "gzip", "bz2": "bzip2"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PRINTF = re.compile(r"%(%|[-+ #0]*(\d*)(?:\.(\d+))?[hlLqjzt]*([diouxX])|.)")
MAX_NAME = 255
"""Longest file name (``NAME_MAX``): a pattern's field width or precision beyond it names no file, and C readers
format it into fixed buffers (a width of 2^31 also makes a 2 GB string)."""


@dataclass
class HeaderInfo:
    """What a NRRD / MetaImage header says about where its voxels are and how many bytes they take."""

    format: str
    """``nrrd`` or ``metaimage``."""
    data_files: list[str] = field(default_factory=list)
    """The names the reader will open for the voxels (pattern expanded, LIST read); empty: in this file."""
    values: list[str] = field(default_factory=list)
    """Each data-file value as written (checked for its location too: a reader may take it as one name)."""
    header_bytes: int = 0
    """Where the header ends in its file (where attached voxels start)."""
    declared_bytes: int | None = None
    """Voxel bytes the header declares (sizes x element size), None when it does not say."""
    compressed: bool = False
    """The voxels are gzip/bzip2/zlib-compressed."""
    encoding: str = "raw"
    """How the voxels are stored: ``raw``, a compression, or NRRD's text encodings ``ascii`` / ``hex``."""
    declared_values: int | None = None
    """Voxel values the header declares (sizes x channels), None when it does not say."""
    listed: bool = False
    """The data files are listed after the header (``LIST``): the header runs to the end of the file."""


def _unsafe(path: Path | None, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(reason, path=path, hint="put the voxels in the file itself (.nrrd / .mha)")


def _malformed(path: Path | None, reason: str) -> CorruptFileError:
    return CorruptFileError(reason, path=path, hint="re-export the file (a header the readers could misread)")


def _text_lines(data: bytes, split: str) -> list[tuple[str, int]]:
    """Lines of ``data`` (latin-1) with the offset just past each; ``split`` is a regex for the line end."""
    text = data.decode("latin-1")
    out, pos = [], 0
    for match in re.finditer(split, text):
        out.append((text[pos : match.start()], match.end()))
        pos = match.end()
    if pos < len(text):
        out.append((text[pos:], len(text)))
    return out


def _expand_pattern(words: list[str], path: Path | None) -> list[str] | None:
    """The names a printf pattern ``fmt min max [step]`` gives, or None when ``words`` is no pattern."""
    if len(words) < 3 or "%" not in words[0]:
        return None
    try:
        numbers = [int(w) for w in words[1:4]]
    except ValueError:
        return None
    conversions = [m for m in _PRINTF.finditer(words[0]) if m.group(1) != "%"]
    if len(conversions) != 1 or conversions[0].group(4) is None:
        raise _unsafe(path, "a data file pattern must hold exactly one integer conversion such as %03d")
    if any(len(n or "") > 3 or int(n or 0) > MAX_NAME for n in conversions[0].group(2, 3)):
        raise _unsafe(path, f"the data file pattern's field width is more than {MAX_NAME} characters")
    low, high, step = numbers[0], numbers[1], numbers[2] if len(numbers) > 2 else 1
    if step == 0 or (high - low) // step + 1 > MAX_DATA_FILES:
        raise _unsafe(path, f"the data file pattern names more than {MAX_DATA_FILES} files or has step 0")
    try:
        return [words[0] % i for i in range(low, high + (1 if step > 0 else -1), step)]
    except (TypeError, ValueError):
        raise _unsafe(path, "the data file pattern is not a printf pattern for one integer") from None


def _add_value(info: HeaderInfo, value: str, rest: list[str], path: Path | None) -> None:
    """Record a data-file value: one name, a pattern's expansion, or ``LIST`` and the lines that follow."""
    value = value.strip()
    if not value:
        raise _unsafe(path, "the data file field is empty")
    info.values.append(value)
    words = value.split()
    if words[0].upper() == "LIST":
        names = [line.strip() for line in rest if line.strip()]
        if len(names) > MAX_DATA_FILES:
            raise _unsafe(path, f"the header lists more than {MAX_DATA_FILES} data files")
        info.listed = True
        info.values += names
        info.data_files += names
        return
    expanded = _expand_pattern(words, path)
    info.data_files += [value] if expanded is None else expanded


def _declared(sizes: list[str], itemsize: int | None, channels: int = 1) -> int | None:
    try:
        dims = [int(s) for s in sizes]
    except ValueError:
        return None
    if not dims or itemsize is None or any(d < 0 for d in dims):
        return None
    return math.prod(dims) * itemsize * max(channels, 1)


def _check_sizes(value: str | None, field: str, path: Path | None) -> None:
    """Sizes must be plain whole numbers from 1: C readers parse ``1e9`` or ``4294967296`` their own way (and wrap)."""
    if value is None or not value.strip():
        return
    sizes = value.split()
    if not all(re.fullmatch(r"[0-9]{1,10}", s) and 1 <= int(s) < 2**31 for s in sizes):
        raise _malformed(path, f"{field} is {value[:40]!r}, not whole numbers from 1 to 2^31 - 1")


def _check_dimension(value: str | None, most: int, field: str, path: Path | None) -> None:
    """Refuse a dimension count the C readers would overflow their fixed arrays with (MetaIO crashes at 1000)."""
    if value is not None and not (re.fullmatch(r"[0-9]{1,3}", value.strip()) and 1 <= int(value) <= most):
        raise _malformed(path, f"{field} is {value[:20]!r}, not a count of 1 to {most} axes")


def _parse_nrrd(data: bytes, path: Path | None) -> HeaderInfo:
    lines = _text_lines(data, r"\r\n|\r|\n")
    info = HeaderInfo("nrrd", header_bytes=len(data))
    fields: dict[str, str] = {}
    for i, (line, after) in enumerate(lines[1:], start=1):
        if line == "":  # teem: an empty line ends the header
            info.header_bytes = after
            break
        if line.startswith("#"):
            continue
        if _CONTROL.search(line):
            raise _malformed(path, f"NRRD header line {i + 1} holds control characters")
        name, sep, value = line.partition(":")
        if not sep:  # teem refuses it too, quoting the line (a long one overflows its message buffer)
            raise _malformed(path, f"NRRD header line {i + 1} is no 'field: value' line")
        if len(line) > NRRD_MAX_LINE and not value.startswith("="):
            raise _malformed(
                path, f"NRRD header line {i + 1} is {len(line)} characters long, more than {NRRD_MAX_LINE}"
            )
        key = re.sub(r"[\s_-]", "", name).lower()
        if key == "datafile":  # also "data file:=", which teem takes as free text: refusing more is safe
            _add_value(info, value.lstrip("="), [text for text, _ in lines[i + 1 :]], path)
            if info.listed:  # the names follow, to the end of the file
                break
        elif not value.startswith("="):  # "key:=value" pairs are free text
            fields[key] = value.strip()
    _check_dimension(fields.get("dimension"), NRRD_MAX_DIM, "NRRD 'dimension'", path)
    _check_sizes(fields.get("sizes"), "NRRD 'sizes'", path)
    itemsize = _NRRD_ITEMSIZE.get(re.sub(r"\s+", " ", fields.get("type", "").lower()))
    info.declared_bytes = _declared(fields.get("sizes", "").split(), itemsize)
    info.declared_values = _declared(fields.get("sizes", "").split(), 1)
    encoding = fields.get("encoding", "").lower()
    info.compressed = encoding in ("gz", "gzip", "bz2", "bzip2", "zstd")
    info.encoding = _NRRD_ENCODINGS.get(encoding, encoding or "raw")
    return info


def _parse_metaio(data: bytes, path: Path | None) -> HeaderInfo:
    lines = _text_lines(data, r"\n")
    info = HeaderInfo("metaimage")
    fields: dict[str, str] = {}
    for i, (raw, after) in enumerate(lines):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        if len(raw) >= METAIO_MAX_LINE:
            raise _malformed(path, f"MetaImage header line {i + 1} is {len(raw)} characters long (MetaIO reads 499)")
        if _CONTROL.search(line) or "\r" in line:
            raise _malformed(path, f"MetaImage header line {i + 1} holds control characters")
        cut = min((k for k in (line.find("="), line.find(":")) if k >= 0), default=-1)
        value = line[cut:].lstrip("=: \t").rstrip() if cut >= 0 else ""
        if not value:  # MetaIO would take the next line as this key's value
            raise _malformed(path, f"MetaImage header line {i + 1} has no 'Key = Value' form")
        name = line[:cut].strip()
        if name.lower() == "elementdatafile":
            if value.lower() != "local":
                _add_value(info, value, [text for text, _ in lines[i + 1 :]], path)
            if name == "ElementDataFile":  # MetaIO stops here: what follows is voxels (LOCAL) or the LIST
                info.header_bytes = after
                break
        else:
            fields[name] = value
    else:
        raise CorruptFileError("not a MetaImage header (no ElementDataFile field)", path=path)
    ndims = next((v for k, v in fields.items() if k.lower() == "ndims"), None)
    _check_dimension(ndims, METAIO_MAX_DIM, "MetaImage 'NDims'", path)
    _check_sizes(fields.get("DimSize"), "MetaImage 'DimSize'", path)
    channels = fields.get("ElementNumberOfChannels", "1")
    kind = fields.get("ElementType", "").upper().removeprefix("MET_").removesuffix("_ARRAY")
    info.declared_bytes = _declared(
        fields.get("DimSize", "").split(), _META_ITEMSIZE.get(kind), int(channels) if channels.isdigit() else 1
    )
    info.compressed = fields.get("CompressedData", "").lower() in ("true", "1")
    if fields.get("BinaryData", "true").lower() in ("false", "0") and not info.compressed:
        info.encoding = "ascii"  # MetaIO reads whitespace-separated numbers
    elif info.compressed:
        info.encoding = "zlib"
    info.declared_values = _declared(fields.get("DimSize", "").split(), 1, int(channels) if channels.isdigit() else 1)
    return info


def parse_header(data: bytes, path: Path | None = None) -> HeaderInfo:
    """Parse the start of a NRRD (``NRRD000x`` magic) or MetaImage file; ``path`` only names it in errors.

    Raises :class:`~ctlens.core.errors.UnsafeArchiveError` for a data-file value that cannot be checked (a pattern
    with other conversions, too many files) and :class:`~ctlens.core.errors.CorruptFileError` for lines the
    readers would misread or when ``data`` is no such header.

    Example:
        >>> parse_header(b"NRRD0005\\n# c\\ndata file: LIST\\na.raw\\nb.raw\\n").data_files
        ['a.raw', 'b.raw']
        >>> parse_header(b"NRRD0004\\ndata file: ../s%03d.raw 1 3 1\\n").data_files
        ['../s001.raw', '../s002.raw', '../s003.raw']
    """
    if data.startswith(b"NRRD000"):
        return _parse_nrrd(data, path)
    return _parse_metaio(data, path)


def read_header(path: str | Path, limit: int = MAX_HEADER_BYTES) -> HeaderInfo:
    """:func:`parse_header` on the first ``limit`` bytes of ``path``; a header that does not end within them
    (padded, a long LIST, or no header at all) is refused.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.mhd"
        >>> _ = p.write_bytes(b"NDims = 1\\nDimSize = 4\\nElementType = MET_SHORT\\nElementDataFile = a.raw\\n")
        >>> read_header(p).declared_bytes
        8
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    longer = len(data) > limit
    data = data[:limit]
    try:
        info = parse_header(data, path)
    except CorruptFileError:
        if longer:
            raise _unsafe(path, f"no complete header within the first {limit} bytes") from None
        raise
    if longer and (info.header_bytes >= len(data) or info.listed):
        raise _unsafe(path, f"no complete header within the first {limit} bytes")
    return info


def _relative_parts(name: str, shown: Path) -> list[str]:
    """The parts of a data-file name, refused when absolute, with ``..`` or with a NUL byte."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if "\0" in name or name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise _unsafe(shown, "the header names a data file outside its own folder ('..' or an absolute path)")
    return [p for p in parts if p not in ("", ".")]


def _short(name: str, limit: int = 80) -> str:
    """A file name from a header, cut for an error line (a crafted one may run to megabytes)."""
    return name if len(name) <= limit else f"{name[:limit]}... ({len(name)} characters)"


def check_data_files(header: str | Path, info: HeaderInfo, root: str | Path, *, what: str | None = None) -> list[Path]:
    """The data files ``info`` names, each checked to lie inside ``root``; raise when one does not.

    Refused (:class:`~ctlens.core.errors.UnsafeArchiveError`): an absolute name, a ``..`` part, a link anywhere
    from ``root`` down, something that is not a regular file; a missing file is a
    :class:`~ctlens.core.errors.CorruptFileError`. ``what`` names the header in errors (the user's own file name;
    default the header's name), never ``root`` or another server path.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (root / "v.raw").write_bytes(bytes(8))
        >>> [p.name for p in check_data_files(root / "v.nhdr", HeaderInfo("nrrd", ["v.raw"]), root)]
        ['v.raw']
        >>> check_data_files(root / "v.nhdr", HeaderInfo("nrrd", values=["../v.raw"]), root)
        Traceback (most recent call last):
        ...
        ctlens.core.errors.UnsafeArchiveError: v.nhdr: the header names a data file outside its own folder ...
    """
    header, root = Path(header), Path(os.path.abspath(root))
    shown = Path(what or header.name)
    try:
        base = Path(os.path.abspath(header.parent)).relative_to(root).parts
    except ValueError:
        raise _unsafe(shown, "the header is not inside the upload's folder") from None
    for value in info.values:
        _relative_parts(value, shown)
    out = []
    for name in info.data_files:
        current = root
        parts = _relative_parts(name, shown)
        if not parts:  # "." or "" names the folder itself
            raise _malformed(shown, f"the header names no data file ('{name}')")
        for part in (*base, *parts):
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                raise CorruptFileError(f"missing data file named in the header: '{_short(name)}'", path=shown) from None
            except OSError as exc:  # a name too long for the file system, a loop, no permission
                raise CorruptFileError(
                    f"cannot use the data file named in the header, '{_short(name)}': {exc.strerror or exc}", path=shown
                ) from None
            if stat.S_ISLNK(mode):
                raise _unsafe(shown, f"the data file '{name}' is reached through a link")
        if not stat.S_ISREG(mode):
            raise _unsafe(shown, f"the data file '{name}' is not a regular file")
        out.append(current)
    return out
