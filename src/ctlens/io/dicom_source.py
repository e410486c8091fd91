"""Turn a user's input (folder, file, zip, list of files) into candidate DICOM files.

Zip archives are unpacked safely into a temporary folder that lives as long as
the :class:`DicomSource` context.

Example:
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp()); (tmp / "a").write_bytes(b"x")
    1
    >>> with DicomSource(tmp) as src:
    ...     [f.path.name for f in src.files]
    ['a']
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.io.archive import safe_extract_zip

PathInput = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass(frozen=True)
class CandidateFile:
    """A file that may hold DICOM: where it is on disk and the name to show in messages."""

    path: Path
    display: str


def _walk(folder: Path) -> Iterable[Path]:
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            yield Path(root) / name


class DicomSource:
    """Context manager listing the candidate files of a folder, file, zip or list of files."""

    def __init__(self, source: PathInput) -> None:
        self.source = source
        self.files: list[CandidateFile] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def name(self) -> str:
        """A short name for the whole input, for messages."""
        if isinstance(self.source, str | os.PathLike):
            return str(self.source)
        return f"{len(self.source)} files"

    def __enter__(self) -> DicomSource:
        paths = [self.source] if isinstance(self.source, str | os.PathLike) else list(self.source)
        if not paths:
            raise InputNotFoundError("no input files were given")
        try:
            for item in paths:
                self._add(Path(item))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _add(self, path: Path) -> None:
        if not path.exists():
            raise InputNotFoundError("no such file or folder", path=path)
        if path.is_dir():
            base = path
            for f in _walk(path):
                if f.suffix.lower() == ".zip":
                    self._add_zip(f)
                else:
                    self.files.append(CandidateFile(f, str(f.relative_to(base.parent))))
            return
        if path.stat().st_size == 0:
            raise CorruptFileError("the file is empty (0 bytes)", path=path)
        if path.suffix.lower() == ".zip":
            self._add_zip(path)
        else:
            self.files.append(CandidateFile(path, str(path)))

    def _add_zip(self, zip_path: Path) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ctlens-zip-")
        dest = Path(self._tmp.name) / str(len(os.listdir(self._tmp.name)))
        for f in safe_extract_zip(zip_path, dest):
            self.files.append(CandidateFile(f, f"{zip_path.name}!{f.relative_to(dest).as_posix()}"))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
