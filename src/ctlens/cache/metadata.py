"""What a data folder holds: one :class:`ImageEntry` per image found under ``<data_dir>/raw/``.

Layout of ``raw/``:

* every first-level folder is a **study**; inside it (at any depth) each NIfTI / NRRD / MHA file is one
  image, each DICOM series (grouped by SeriesInstanceUID over all the study's DICOM files, wherever
  they lie) is one image, and each zip file gives one image per DICOM series it holds;
* a loose file directly in ``raw/`` (``raw/case7.nii.gz``, ``raw/case8.zip``) is a study of its own.

Each entry carries a stable image name, the source (relative to ``data_dir``), the DICOM series
selector (a short, non-identifying hash of the SeriesInstanceUID), the mode (``'ct'`` / ``'mri'``:
from ``mode_mapping`` when given, else from the data with the reason), and the sha256 content hash of
the source's bytes. A study that cannot give an image (empty folder, unreadable files, a one-slice
series, one SeriesInstanceUID mixing orientations or matrix sizes) still gets an entry whose
``problem`` says why, so the cache reports it instead of silently dropping it.

Example:
    >>> import pathlib, tempfile, nibabel as nib, numpy as np
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "raw" / "s1").mkdir(parents=True)
    >>> ct = np.full((8, 8, 4), -1000, np.int16); ct[2:6, 2:6] = 1200
    >>> nib.save(nib.Nifti1Image(ct, np.eye(4)), root / "raw" / "s1" / "head.nii.gz")
    >>> meta = DatasetMetadata.from_directory(root)
    >>> [(e.study, e.image, e.kind, e.mode) for e in meta]
    [('s1', 'head', 'nifti', 'ct')]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ctlens.core.errors import CorruptFileError, CTLensError
from ctlens.io.suffixes import (
    IMAGE2D_SUFFIXES,
    NIFTI_SUFFIXES,
    TEXT_SUFFIXES,
    ZIP_SUFFIX,
    is_volume_file,
    strip_suffix,
)

__all__ = ["DatasetMetadata", "ImageEntry", "content_hash", "image_name"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_IGNORED_SUFFIXES = (*TEXT_SUFFIXES, *IMAGE2D_SUFFIXES, ".raw", ".zraw")
"""Never an image of the data folder: documents, 2-D images, raw pixel files beside their NRRD / MHD header."""
_IGNORED_NAMES = ("license", "readme", "dicomdir")
_MODES = {"ct": "ct", "mri": "mri", "mr": "mri"}
_HASH_CHUNK = 1 << 20


@dataclass
class ImageEntry:
    """One image of the data folder.

    ``problem`` is ``None`` for a usable image, else a category (``'empty'``, ``'unreadable'``,
    ``'one slice'``, ``'mixed series'``) with the details in ``problem_detail``.

    Example:
        >>> ImageEntry(study="s", image="ct", source="raw/s/ct.nii.gz", kind="nifti").name
        's/ct'
    """

    study: str
    image: str
    source: str
    kind: str
    series: str | None = None
    mode: str | None = None
    mode_reason: str = ""
    content_hash: str = ""
    fingerprint: str = ""
    n_files: int = 0
    problem: str | None = None
    problem_detail: str = ""
    files: list[str] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        """``study/image``: the entry's unique name."""
        return f"{self.study}/{self.image}"

    @property
    def ok(self) -> bool:
        """True when the scan found nothing wrong with the entry."""
        return self.problem is None


def content_hash(paths: list[Path]) -> str:
    """sha256 over the bytes of ``paths`` (order-free: the sorted per-file digests are hashed).

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a"; _ = p.write_bytes(b"abc")
        >>> content_hash([p])[:12]
        'dfe7a23fefee'
    """
    digests = []
    for path in paths:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
        digests.append(h.hexdigest())
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def _fingerprint(paths: list[Path]) -> str:
    """Cheap change detector (real path, size, mtime) used to reuse a previous scan's hash and mode."""
    parts = []
    for p in sorted(paths):
        st = p.stat()
        parts.append(f"{os.path.realpath(p)}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def image_name(text: str, fallback: str = "image") -> str:
    """A file-name-safe image or study name (letters, digits, ``.``, ``_``, ``-``); ``fallback`` if none is left.

    Example:
        >>> image_name("series 1/B70f (lung)"), image_name("..", fallback="_")
        ('series_1_B70f_lung', '_')
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return name or fallback


def _stem(path: Path) -> str:
    stem = strip_suffix(path.name)
    return stem if stem != path.name else path.stem


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if is_volume_file(name):
        return "itk"
    if name.endswith(ZIP_SUFFIX):
        return "zip"
    if name.endswith(_IGNORED_SUFFIXES) or name in _IGNORED_NAMES or name.startswith("."):
        return "ignored"
    return "dicom"


def _walk(folder: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    return found


def _normalize_mode(mode: str, where: str) -> str:
    m = _MODES.get(str(mode).strip().lower())
    if m is None:
        raise ValueError(f"mode_mapping[{where!r}] must be 'ct' or 'mri', got {mode!r}")
    return m


class _Scanner:
    """Builds the entries of one data folder (a helper of :meth:`DatasetMetadata.from_directory`)."""

    def __init__(self, data_dir: Path, mode_mapping: Mapping[str, str], previous: DatasetMetadata | None) -> None:
        self.data_dir = data_dir
        self.mode_mapping = dict(mode_mapping)
        self.previous = {(e.source, e.series, e.fingerprint): e for e in previous or []}
        self.entries: list[ImageEntry] = []

    def rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.data_dir)).as_posix()

    def add(self, entry: ImageEntry, paths: list[Path], modality_tag: str = "") -> None:
        taken = {e.image for e in self.entries if e.study == entry.study}
        base, n = entry.image, 2
        while entry.image in taken:
            entry.image, n = f"{base}_{n}", n + 1
        entry.files = [self.rel(p) for p in paths]
        entry.n_files = len(paths)
        if paths:
            try:
                entry.fingerprint = _fingerprint(paths)
                old = self.previous.get((entry.source, entry.series, entry.fingerprint))
                if old is not None and old.content_hash:
                    entry.content_hash, entry.mode, entry.mode_reason = old.content_hash, old.mode, old.mode_reason
                    if old.problem and not entry.problem:
                        entry.problem, entry.problem_detail = old.problem, old.problem_detail
                else:
                    entry.content_hash = content_hash(paths)
            except OSError as exc:
                entry.problem, entry.problem_detail = "unreadable", f"{entry.source}: {exc.strerror or exc}"
        self._set_mode(entry, modality_tag)
        self.entries.append(entry)

    def _set_mode(self, entry: ImageEntry, modality_tag: str) -> None:
        for key in (entry.name, entry.study):
            if key in self.mode_mapping:
                entry.mode = _normalize_mode(self.mode_mapping[key], key)
                entry.mode_reason = f"mode_mapping[{key!r}]"
                return
        if entry.mode:
            return
        tag = modality_tag.strip().upper()
        if tag in ("CT", "MR"):
            entry.mode, entry.mode_reason = _MODES[tag.lower()], f"DICOM Modality {tag!r}"
            return
        if entry.problem:
            return
        try:
            from ctlens.preprocess.mode import detect_mode

            volume = load_entry_volume(self.data_dir, entry)
            entry.mode, entry.mode_reason = detect_mode(volume)
            if min(volume.shape) < 2:
                entry.problem = "one slice"
                entry.problem_detail = f"{entry.source}: a single slice {volume.shape} cannot form a 3-D volume"
        except CTLensError as exc:
            entry.problem, entry.problem_detail = "unreadable", exc.one_line()
        except Exception as exc:  # noqa: BLE001 - any reader failure is a per-image problem, never a crash
            entry.problem, entry.problem_detail = "unreadable", f"{entry.source}: {type(exc).__name__}: {exc}"

    def scan_study(self, study: str, root: Path) -> None:
        files = [root] if root.is_file() else _walk(root)
        before = len(self.entries)
        dicom: list[Path] = []
        empty: list[Path] = []
        for path in files:
            kind = _kind(path)
            if kind == "ignored":
                continue
            if path.stat().st_size == 0:
                empty.append(path)
                continue
            if kind in ("nifti", "itk"):
                self.add(ImageEntry(study, image_name(_stem(path)), self.rel(path), kind), [path])
            elif kind == "zip":
                self._scan_dicom(study, root, [path], zip_path=path)
            else:
                dicom.append(path)
        if dicom:
            self._scan_dicom(study, root, dicom)
        for path in empty:  # an empty file is worth reporting when it looks like an image of its own
            if _kind(path) != "dicom" or len(self.entries) == before:
                entry = ImageEntry(study, image_name(_stem(path)), self.rel(path), _kind(path))
                entry.problem, entry.problem_detail = "unreadable", f"{self.rel(path)}: empty file (0 bytes)"
                self.add(entry, [])
        if len(self.entries) == before:
            entry = ImageEntry(study, "empty", self.rel(root), "none")
            entry.problem = "empty"
            entry.problem_detail = f"{self.rel(root)}: no image files in the study" + (
                f" (only {len(files)} ignored file(s))" if files else ""
            )
            self.add(entry, [])

    def _scan_dicom(self, study: str, root: Path, files: list[Path], zip_path: Path | None = None) -> None:
        from ctlens.io.dicom_reader import list_series

        source_name = self.rel(zip_path) if zip_path else self.rel(root)
        try:
            infos = list_series(zip_path if zip_path else files)
        except CTLensError as exc:
            if zip_path is not None or not any(e.study == study for e in self.entries):
                entry = ImageEntry(study, image_name(_stem(zip_path)) if zip_path else "dicom", source_name, "dicom")
                entry.problem, entry.problem_detail = "unreadable", exc.one_line()
                self.add(entry, [zip_path] if zip_path else files)
            else:
                log.info("%s: files that are not images were ignored (%s)", source_name, exc.reason)
            return
        by_uid: dict[str, list] = {}
        for info in infos:
            by_uid.setdefault(info.series_uid, []).append(info)
        planned = []
        for blocks in by_uid.values():
            if zip_path is not None:
                paths, folder, kind, base = [zip_path], zip_path, "zip", _stem(zip_path)
            else:
                paths = sorted({ref.file.path for b in blocks for ref in b.refs})
                folder = Path(os.path.commonpath([str(p.parent) for p in paths])) if root.is_dir() else root
                kind = "dicom"
                rel = Path(os.path.relpath(folder, root)).as_posix() if root.is_dir() else _stem(root)
                base = "dicom" if rel in (".", "") else rel
            planned.append((blocks, paths, folder, kind, base))
        bases = [p[4] for p in planned]
        for blocks, paths, folder, kind, base in planned:
            info = max(blocks, key=lambda s: s.voxels)
            if bases.count(base) > 1:
                base = f"{base}_{info.series_id[:8]}"
            entry = ImageEntry(study, image_name(base), self.rel(folder), kind, series=info.series_id)
            if len(blocks) > 1:
                entry.problem = "mixed series"
                shapes = ", ".join(f"{b.n_slices} {b.orientation} {b.rows}x{b.columns}" for b in blocks)
                entry.problem_detail = (
                    f"{entry.source}: one SeriesInstanceUID mixes {len(blocks)} blocks of different "
                    f"orientation or matrix size ({shapes})"
                )
            elif info.n_slices < 2:
                entry.problem = "one slice"
                entry.problem_detail = f"{entry.source}: series {info.label()} has a single slice"
            self.add(entry, paths, modality_tag=info.modality)


def load_entry_volume(data_dir: str | os.PathLike[str], entry: ImageEntry, **options: Any):  # noqa: ANN201
    """Read an entry's source as a :class:`~ctlens.core.volume.Volume` (DICOM: its series, uneven -> resample).

    Example:
        >>> load_entry_volume(".", ImageEntry("s", "x", "no/such.nii.gz", "nifti"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.core.errors.InputNotFoundError: no/such.nii.gz: no such file
    """
    from ctlens.io.loader import load

    path = Path(data_dir) / entry.source
    if entry.kind in ("dicom", "zip"):
        opts = {"uneven": "resample", "tilt": "correct", **options}
        return load(path, series=entry.series, **opts)
    if entry.kind in ("nifti", "itk"):
        return load(path)
    raise CorruptFileError(f"no image to read ({entry.problem_detail or entry.kind})", path=entry.source)


@dataclass
class DatasetMetadata:
    """All images of a data folder (see the module doc); iterate it for the :class:`ImageEntry` s.

    Example:
        >>> meta = DatasetMetadata("data", [ImageEntry("s", "ct", "raw/s/ct.nii.gz", "nifti", mode="ct")])
        >>> len(meta), meta.studies, meta.get("s", "ct").kind
        (1, ['s'], 'nifti')
    """

    data_dir: str
    entries: list[ImageEntry] = field(default_factory=list)

    def __iter__(self) -> Iterator[ImageEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def studies(self) -> list[str]:
        """Study names in scan order, each once."""
        return list(dict.fromkeys(e.study for e in self.entries))

    def get(self, study: str, image: str) -> ImageEntry:
        """The entry ``study/image``; ``KeyError`` naming it when absent."""
        for e in self.entries:
            if e.study == study and e.image == image:
                return e
        raise KeyError(f"no image {study}/{image} in the metadata of {self.data_dir}")

    @property
    def usable(self) -> list[ImageEntry]:
        """Entries without a scan problem."""
        return [e for e in self.entries if e.ok]

    @classmethod
    def from_directory(
        cls,
        data_dir: str | os.PathLike[str],
        mode_mapping: Mapping[str, str] | str | os.PathLike[str] | None = None,
        *,
        previous: DatasetMetadata | None = None,
    ) -> DatasetMetadata:
        """Scan ``<data_dir>/raw/``: one entry per image (module doc).

        ``mode_mapping``: ``{study or "study/image": "ct" | "mri"}`` (or a JSON file of it); images it
        does not name get their mode from the data (DICOM Modality, else the intensities). ``previous``:
        an earlier scan whose hashes and modes are reused for files whose path, size and mtime did not
        change (so a rescan reads only what changed).

        Example:
            >>> import tempfile, pathlib
            >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "raw" / "nothing").mkdir(parents=True)
            >>> [(e.image, e.problem) for e in DatasetMetadata.from_directory(root)]
            [('empty', 'empty')]
        """
        data = Path(data_dir)
        raw = data / "raw"
        if not raw.is_dir():
            from ctlens.core.errors import InputNotFoundError

            raise InputNotFoundError(
                "no raw/ folder", path=data, hint="put one folder per study (or one file per study) under raw/"
            )
        if isinstance(mode_mapping, str | os.PathLike):
            mode_mapping = json.loads(Path(mode_mapping).read_text())
        scanner = _Scanner(data, mode_mapping or {}, previous)
        taken: set[str] = set()
        for child in sorted(raw.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_file() and _kind(child) == "ignored":
                continue
            study = base = image_name(child.name if child.is_dir() else _stem(child))
            n = 2
            while study in taken:  # "a b" and "a_b", or "x/" and "x.nii.gz", get distinct names
                study, n = f"{base}_{n}", n + 1
            taken.add(study)
            scanner.scan_study(study, child)
        return cls(str(data), scanner.entries)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the metadata as JSON (atomically).

        Example:
            >>> import tempfile, pathlib
            >>> p = pathlib.Path(tempfile.mkdtemp()) / "meta.json"
            >>> DatasetMetadata("d", [ImageEntry("s", "ct", "raw/s.nii", "nifti")]).save(p)
            >>> DatasetMetadata.load(p).entries[0].name
            's/ct'
        """
        from ctlens.io.files import atomic_output

        doc = {"format_version": FORMAT_VERSION, "data_dir": self.data_dir, "entries": [asdict(e) for e in self]}
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DatasetMetadata:
        """Read metadata written by :meth:`save` (see there for an example)."""
        try:
            doc = json.loads(Path(path).read_text())
            entries = [ImageEntry(**e) for e in doc["entries"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(f"not a ctlens dataset metadata file ({exc})", path=path) from exc
        return cls(doc.get("data_dir", ""), entries)
