"""DICOM file de-identification with the PS3.15 Basic Application Level Confidentiality Profile.

The profile's actions (PS3.15 Annex E, Table E.1-1) are data in :mod:`ctlens.io.deid_profile`;
:func:`deidentify_dataset` applies them in place and recursively into sequences, replacing UIDs with
:func:`ctlens.io.uid_hash.hash_uid`. :func:`deidentify_file` and :func:`deidentify_path` read, de-identify and
write DICOM files atomically. UIDs are salted (``salt``; by default the installation salt of
:mod:`ctlens.io.uid_hash`, which the readers use too, so the UIDs in ``Volume.meta`` match the written files).
(The small metadata dicts of ``Volume.meta`` are cleaned by
:func:`ctlens.io.uid_hash.deidentify_meta`.)

What the profile does not cover and this module does not do: text burned into the pixels (a warning is logged and
put in the report when ``BurnedInAnnotation`` is not ``NO``) and identifying free text in attributes the profile
keeps.

Example:
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset(); ds.PatientName = "Doe^Jane"
    >>> deidentify_dataset(ds).emptied, ds.PatientIdentityRemoved
    (['PatientName'], 'YES')
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from ctlens.core.errors import CorruptFileError, CTLensError, InputNotFoundError, UnsupportedFormatError
from ctlens.io.deid_profile import (
    DICOM_UID_ROOT,
    DUMMY_VALUES,
    FILE_META_REMOVE,
    PROFILE_ACTIONS,
    PROFILE_CODE,
    PROFILE_NAME,
)
from ctlens.io.dicom_headers import with_file_meta
from ctlens.io.dicom_magic import is_raw_dataset, looks_like_dicom, read_head
from ctlens.io.files import atomic_output
from ctlens.io.uid_hash import hash_uid

__all__ = ["DeidReport", "deidentify_dataset", "deidentify_file", "deidentify_path"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DeidReport:
    """What :func:`deidentify_dataset` did to one data set.

    Entries are keywords (or ``(gggg,eeee)`` tags for unnamed elements); elements inside sequences are written as
    ``Sequence[index].Keyword``.

    Example:
        >>> r = DeidReport(removed=["PatientAddress"], emptied=["PatientName"], private_removed=2)
        >>> r.summary()
        'removed 1, emptied 1, replaced 0, UIDs replaced 0, private tags removed 2'
        >>> r.to_dict()["removed"]
        ['PatientAddress']
    """

    removed: list[str] = dataclasses.field(default_factory=list)
    emptied: list[str] = dataclasses.field(default_factory=list)
    replaced: list[str] = dataclasses.field(default_factory=list)
    uid_replaced: list[str] = dataclasses.field(default_factory=list)
    private_removed: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)
    source: str | None = None
    destination: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the report."""
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line: how many elements were removed, emptied, replaced, and where the result went."""
        text = (
            f"removed {len(self.removed)}, emptied {len(self.emptied)}, replaced {len(self.replaced)}, "
            f"UIDs replaced {len(self.uid_replaced)}, private tags removed {self.private_removed}"
        )
        if self.source and self.destination:
            text = f"{self.source} -> {self.destination}: {text}"
        if self.warnings:
            text += f" ({len(self.warnings)} warning{'s' if len(self.warnings) > 1 else ''})"
        return text


# --------------------------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------------------------


def _name(elem: pydicom.DataElement) -> str:
    return elem.keyword or keyword_for_tag(elem.tag) or str(elem.tag)


def _is_curve_or_overlay(tag: BaseTag) -> bool:
    """Repeating groups 50xx (retired curves) and 60xx (overlays, whose data may hold burned-in text)."""
    group = tag.group
    return (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E) and group % 2 == 0


def _uid_action(elem: pydicom.DataElement) -> str:
    """Action for a UI element the table does not list: keep class UIDs and the standard's own, else replace."""
    keyword = elem.keyword
    if keyword.endswith("ClassUID") or keyword in ("CodingSchemeUID", "MappingResourceUID", "ContextUID"):
        return "K"
    values = elem.value if isinstance(elem.value, MultiValue | list | tuple) else [elem.value]
    if values and all(str(v).startswith(DICOM_UID_ROOT) for v in values if v):
        return "K"
    return "U"


def _replace_uids(elem: pydicom.DataElement, salt: str | None) -> bool:
    value = elem.value
    if value is None or value == "":
        return False
    if isinstance(value, MultiValue | list | tuple):
        elem.value = [hash_uid(str(v), salt) if v else v for v in value]
    else:
        elem.value = hash_uid(str(value), salt)
    return True


def _empty(elem: pydicom.DataElement) -> None:
    elem.value = Sequence() if elem.VR == "SQ" else empty_value_for_VR(elem.VR)


def _apply(ds: Dataset, salt: str | None, report: DeidReport, prefix: str, *, file_meta: bool = False) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        name = prefix + _name(elem)
        if tag.is_private:
            del ds[tag]
            report.private_removed += 1
            continue
        if _is_curve_or_overlay(tag) or (tag.element == 0 and tag.group != 0x0002):
            # curves, overlays and (retired) group lengths, which would be wrong after the changes
            del ds[tag]
            report.removed.append(name)
            continue
        if file_meta and elem.keyword in FILE_META_REMOVE:
            del ds[tag]
            report.removed.append(name)
            continue
        action = PROFILE_ACTIONS.get(elem.keyword)
        if action is None:
            if elem.VR == "UI":
                action = _uid_action(elem)
            elif elem.VR == "PN":
                action = "Z"  # a name the table does not list (e.g. in a sequence item): empty it, to be safe
            else:
                action = "K"
        if action == "X":
            del ds[tag]
            report.removed.append(name)
        elif action == "Z" or (action == "D" and elem.VR == "SQ"):
            if not elem.is_empty:
                _empty(elem)
                report.emptied.append(name)
        elif action == "D":
            dummy = DUMMY_VALUES.get(elem.VR)
            if dummy is None:
                _empty(elem)
                report.emptied.append(name)
            else:
                elem.value = dummy
                report.replaced.append(name)
        elif action == "U":
            if elem.VR == "UI":
                if _replace_uids(elem, salt):
                    report.uid_replaced.append(name)
            elif not elem.is_empty:  # a UID keyword with an unexpected VR: do not keep what we cannot map
                _empty(elem)
                report.emptied.append(name)
        elif elem.VR == "SQ" and elem.value:
            for i, item in enumerate(elem.value):
                _apply(item, salt, report, f"{name}[{i}].")


def _mark_deidentified(ds: Dataset, report: DeidReport) -> None:
    ds.PatientIdentityRemoved = "YES"
    existing = ds.get("DeidentificationMethod") or []
    methods = [existing] if isinstance(existing, str) else [str(m) for m in existing]
    if PROFILE_NAME not in methods:
        methods.append(PROFILE_NAME)
    ds.DeidentificationMethod = methods[0] if len(methods) == 1 else methods
    codes = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    if not any(item.get("CodeValue") == PROFILE_CODE[0] for item in codes):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = PROFILE_CODE
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    date_keywords = ("Date", "Time", "DateTime")
    if any(n.split(".")[-1].endswith(date_keywords) for n in report.removed + report.emptied + report.replaced):
        ds.LongitudinalTemporalInformationModified = "REMOVED"
    burned_in = str(ds.get("BurnedInAnnotation", "")).upper()
    if burned_in != "NO":
        message = (
            "BurnedInAnnotation is "
            + (repr(burned_in) if burned_in else "not given")
            + ": text in the pixels is not removed by this profile; check the images before sharing"
        )
        report.warnings.append(message)


def deidentify_dataset(ds: Dataset, *, salt: str | None = None) -> DeidReport:
    """De-identify ``ds`` in place with the PS3.15 Basic Application Level Confidentiality Profile.

    Applies ``PROFILE_ACTIONS`` recursively into sequences (and to ``ds.file_meta``), removes all private tags,
    curves and overlays, replaces UIDs with ``hash_uid(uid, salt)`` (the same UID and salt always give the same
    replacement, so references between files stay consistent; ``salt=None`` is the installation salt,
    :func:`ctlens.io.uid_hash.installation_salt`) and records the profile in
    ``PatientIdentityRemoved``, ``DeidentificationMethod`` and ``DeidentificationMethodCodeSequence`` (113100).

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset()
        >>> ds.PatientName, ds.PatientAddress, ds.StudyInstanceUID = "Doe^Jane", "1 Main St", "1.2.3"
        >>> report = deidentify_dataset(ds)
        >>> str(ds.PatientName), "PatientAddress" in ds, ds.StudyInstanceUID == hash_uid("1.2.3")
        ('', False, True)
        >>> report.removed, report.emptied, ds.PatientIdentityRemoved
        (['PatientAddress'], ['PatientName'], 'YES')
    """
    report = DeidReport()
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _apply(file_meta, salt, report, "file_meta.", file_meta=True)
    _apply(ds, salt, report, "")
    _mark_deidentified(ds, report)
    return report


# --------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------


def _expected_native_pixel_bytes(ds: Dataset) -> int | None:
    try:
        rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    total_bits = rows * cols * samples * frames * bits
    return (total_bits + 7) // 8


def _read(src: Path) -> Dataset:
    """Read ``src`` strictly (PS3.10 file format required) and check it is complete."""
    if not src.exists():
        raise InputNotFoundError("file not found", path=src, hint="check the path")
    if src.is_dir():
        raise InputNotFoundError("is a folder, not a file", path=src, hint="use deidentify_path for folders")
    if src.stat().st_size == 0:
        raise CorruptFileError("file is empty (0 bytes)", path=src, hint="re-export or copy the file again")
    try:
        ds = pydicom.dcmread(src, force=is_raw_dataset(read_head(src)))  # a bare data set: no preamble, no DICM
    except InvalidDicomError as exc:
        raise CorruptFileError(
            f"not a DICOM file ({exc})",
            path=src,
            hint="DICOM PS3.10 files (with a 'DICM' header) and bare DICOM data sets can be read",
        ) from exc
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, NotImplementedError) as exc:
        raise CorruptFileError(
            f"cannot parse the DICOM file ({type(exc).__name__}: {exc})", path=src, hint="the file may be truncated"
        ) from exc
    hint = "the file is truncated or damaged; copy or re-export it"
    if not getattr(ds, "preamble", None) and "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds = with_file_meta(ds)  # written back as a PS3.10 file, with file meta from its own encoding and UIDs
    if "TransferSyntaxUID" not in ds.file_meta:
        raise CorruptFileError("file meta information is incomplete (no TransferSyntaxUID)", path=src, hint=hint)
    if len(ds) == 0:
        raise CorruptFileError("no data set after the file meta information", path=src, hint=hint)
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and raw.value is not None
            and raw.length != 0xFFFFFFFF
            and len(raw.value) < raw.length
        ):
            keyword = keyword_for_tag(tag) or str(tag)
            raise CorruptFileError(
                f"truncated: {keyword} has {len(raw.value)} of its {raw.length} bytes", path=src, hint=hint
            )
    if "PixelData" in ds and not ds.file_meta.TransferSyntaxUID.is_compressed:
        expected = _expected_native_pixel_bytes(ds)
        actual = len(ds.PixelData or b"")
        if expected is not None and actual < expected:
            raise CorruptFileError(f"truncated pixel data ({actual} of {expected} bytes)", path=src, hint=hint)
    return ds


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:  # pragma: no cover - races with a disappearing file
        return False


def _write_atomic(ds: Dataset, dst: Path) -> None:
    """Write ``ds`` to ``dst`` with :func:`~ctlens.io.files.atomic_output`: never a partial file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dst) as tmp:
        try:
            with open(tmp, "wb") as fh:
                pydicom.dcmwrite(fh, ds, enforce_file_format=True)
        except CTLensError:
            raise
        except Exception as exc:
            raise CTLensError(
                f"could not write the de-identified file ({type(exc).__name__}: {exc})",
                path=dst,
                hint="check free space and permissions of the destination folder",
            ) from exc


def deidentify_file(src: Path, dst: Path, *, salt: str | None = None) -> DeidReport:
    """Read the DICOM file ``src``, de-identify it and write it atomically to ``dst``.

    ``dst`` may be an existing folder (the file keeps its name there) but never ``src`` itself. A non-DICOM,
    empty or truncated ``src`` raises :class:`CorruptFileError` naming the file and nothing is written.

    Example:
        >>> import tempfile, pydicom
        >>> from pydicom.data import get_testdata_file
        >>> tmp = tempfile.TemporaryDirectory()
        >>> out = Path(tmp.name) / "ct.dcm"
        >>> report = deidentify_file(Path(get_testdata_file("CT_small.dcm")), out, salt="s")
        >>> "PatientName" in report.emptied, pydicom.dcmread(out).PatientIdentityRemoved
        (True, 'YES')
        >>> tmp.cleanup()
    """
    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        dst = dst / src.name
    if _same_file(src, dst):
        raise CTLensError(
            "refusing to overwrite the source file with its de-identified copy",
            path=src,
            hint="choose a different destination",
        )
    ds = _read(src)
    if ds.file_meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10":
        raise UnsupportedFormatError(
            "DICOMDIR files cannot be de-identified in place (their offsets would break)",
            path=src,
            hint="de-identify the image files and build a new DICOMDIR",
        )
    report = deidentify_dataset(ds, salt=salt)
    ds.preamble = b"\0" * 128  # the preamble is free-form and may carry anything
    _write_atomic(ds, dst)
    report.source, report.destination = str(src), str(dst)
    for message in report.warnings:
        logger.warning("%s: %s", src, message)
    return report


def _is_relative_to(path: Path, other: Path) -> bool:
    try:
        path.relative_to(other)
    except ValueError:
        return False
    return True


def _walk_files(folder: Path) -> list[Path]:
    """Every non-folder entry under ``folder``, sorted, without descending into symbolically linked folders."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        found.extend(Path(root) / name for name in files)
        found.extend(Path(root) / name for name in dirs if (Path(root) / name).is_symlink())
    return sorted(found)


def deidentify_path(src: Path, dst: Path, *, salt: str | None = None) -> list[DeidReport]:
    """De-identify a DICOM file, or every DICOM file under a folder, into ``dst``.

    For a folder, files are found recursively and written to the same relative path under ``dst`` (which must not
    lie inside ``src``); files that are not DICOM, or are damaged, are skipped with a logged warning, symbolic
    links and DICOMDIR files are skipped too. Use the same ``salt`` for every part of a study so the replaced
    UIDs keep matching.

    Example:
        >>> import tempfile, shutil
        >>> from pydicom.data import get_testdata_file
        >>> tmp = tempfile.TemporaryDirectory()
        >>> src, dst = Path(tmp.name) / "in", Path(tmp.name) / "out"
        >>> (src / "a").mkdir(parents=True)
        >>> _ = shutil.copy(get_testdata_file("CT_small.dcm"), src / "a" / "1.dcm")
        >>> [Path(r.destination).relative_to(dst).as_posix() for r in deidentify_path(src, dst)]
        ['a/1.dcm']
        >>> tmp.cleanup()
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputNotFoundError("path not found", path=src, hint="check the path")
    if src.is_file():
        return [deidentify_file(src, dst, salt=salt)]
    src_real, dst_real = src.resolve(), dst.resolve()
    if _is_relative_to(dst_real, src_real):
        raise CTLensError(
            f"the destination {dst} lies inside the source folder",
            path=src,
            hint="choose a destination outside the folder being de-identified",
        )
    reports: list[DeidReport] = []
    for path in _walk_files(src):
        if path.is_symlink():
            logger.warning("%s: skipped (symbolic link)", path)
            continue
        if not looks_like_dicom(read_head(path)):
            logger.warning("%s: skipped (not a DICOM file)", path)
            continue
        try:
            reports.append(deidentify_file(path, dst / path.relative_to(src), salt=salt))
        except (CorruptFileError, UnsupportedFormatError) as exc:
            logger.warning("%s: skipped (%s)", path, exc.reason)
    if not reports:
        raise InputNotFoundError("no DICOM files found", path=src, hint="point at a folder of DICOM (.dcm) files")
    return reports
