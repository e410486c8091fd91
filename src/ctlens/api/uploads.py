"""Receiving uploads safely: the multipart form, size and file-count caps, content sniffing, zip checks, staging.

Files are streamed into a private staging folder under the service folder and named by their sniffed kind
(``0000.dcm``, ``upload.nii.gz`` ...): uploaded names never reach the file system, so they cannot traverse
paths, and they are never logged (they may hold patient names). The SHA-256 of the content (one file: its
digest; several: the digest of their sorted digests, so order does not matter) is the cache and idempotency key;
one chosen series of an upload has its own key (:func:`series_key`). Anything refused leaves nothing behind.

An upload is self-contained: a NRRD / MetaImage header may only name data files that arrived with it, inside its
own extraction folder, reached without links (:func:`check_self_contained`, run before any library opens the
file); errors name the user's own file name, never a server path. Compressed inputs are held to the budget of
:mod:`ctlens.io.decompress_budget` before any analysis (:func:`check_expansion`); zips also while they unpack.

Example:
    >>> content_key(["b" * 64, "a" * 64]) == content_key(["a" * 64, "b" * 64])
    True
    >>> series_key("a" * 64, "2") == series_key("a" * 64, "3")
    False
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from ctlens.api.sniff import SUFFIX, metaimage_data, sniff, sniff_file
from ctlens.core.errors import CorruptFileError, CTLensError, ServiceError, UnsafeArchiveError
from ctlens.io.decompress_budget import Budget, BudgetExceeded, check_declared, stream_size
from ctlens.io.detached_header import check_data_files, read_header
from ctlens.io.dicom_magic import HEAD_BYTES, read_head

CHUNK = 1 << 20
VOLUME_KINDS = ("nifti", "nifti_gz", "nrrd", "mha")
IMAGE_KINDS = ("png", "jpeg")


def content_key(digests: list[str]) -> str:
    """The cache key of an upload from the SHA-256 hex digests of its files."""
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def series_key(sha: str, series: str) -> str:
    """Content key of one chosen series of an upload (another series of the same bytes is another content)."""
    return hashlib.sha256(f"{sha}\nseries={series}".encode()).hexdigest()


async def read_upload_form(request: Request, max_files: int) -> tuple[FormData, list[UploadFile], str | None]:
    """The multipart form of ``POST /api/analyze`` (close it when done), its files and its ``series`` field.

    A body that is not multipart, or is malformed, is a 400 problem.
    """
    try:
        form = await request.form(max_files=max_files, max_fields=16)
    except Exception as exc:  # malformed multipart bodies are client errors
        if isinstance(exc, CTLensError):
            raise
        if "too many" in str(exc).lower():
            raise ServiceError(f"more than {max_files} files or too many form fields", status=413) from None
        raise ServiceError(f"cannot read the multipart body ({type(exc).__name__})", status=400) from None
    files = [v for k, v in form.multi_items() if k in ("files", "file") and isinstance(v, UploadFile)]
    series = form.get("series")
    return form, files, series if isinstance(series, str) and series else None


@dataclass
class StagedUpload:
    """An upload written to ``folder``: what it is, where the readable input is, its content key."""

    folder: Path
    kind: str
    """``dicom`` (files or a zip), one of :data:`VOLUME_KINDS` or :data:`IMAGE_KINDS`."""
    input_path: Path
    sha256: str
    nbytes: int
    n_files: int
    digests: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    """The user's own file names (only for error messages; never used on disk, never logged)."""

    def discard(self) -> None:
        """Remove everything staged."""
        shutil.rmtree(self.folder, ignore_errors=True)


async def upload_key(uploads: list, *, max_bytes: int, max_files: int) -> str | None:
    """The content key of the uploaded files without writing anything (files are rewound afterwards).

    Lets a cache hit answer before any staging; None when there is nothing to hash or a cap is exceeded
    (staging then reports the problem).
    """
    if not uploads or len(uploads) > max_files:
        return None
    digests = []
    total = 0
    for upload in uploads:
        digest = hashlib.sha256()
        while chunk := await upload.read(4 * CHUNK):
            total += len(chunk)
            if total > max_bytes:
                await upload.seek(0)
                return None
            digest.update(chunk)
        await upload.seek(0)
        digests.append(digest.hexdigest())
    return content_key(digests)


async def stage_file(upload, target: Path, max_bytes: int, used: int) -> tuple[str, int, str | None]:
    """Copy one Starlette ``UploadFile`` to ``target``; return (sha256, bytes, sniffed kind)."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with open(target, "wb") as out:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if used + size > max_bytes:
                raise ServiceError(
                    f"upload larger than the limit of {max_bytes} bytes", status=413, hint="CTLENS_MAX_UPLOAD_BYTES"
                )
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size, sniff(head) if size else None


def shown_name(upload, index: int) -> str:
    """The user's name of an uploaded file for error messages: its last part, printable, at most 80 characters.

    Example:
        >>> class Up: filename = "C:\\\\scans\\\\ct\\x07.nrrd"
        >>> shown_name(Up(), 0), shown_name(object(), 1)
        ('ct.nrrd', 'file #2')
    """
    name = re.split(r"[\\/]", str(getattr(upload, "filename", "") or ""))[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name)[:80]
    return name or f"file #{index + 1}"


async def stage_uploads(
    uploads: list, folder: Path, *, max_bytes: int, max_files: int, budget: Budget | None = None
) -> StagedUpload:
    """Stage the uploaded files into ``folder`` (created) and return a :class:`StagedUpload`.

    Raises :class:`ServiceError` (4xx) for no file, too many files, too many bytes, an empty file, a file
    whose content is not an accepted format, a mix that is not one volume, a header naming files outside the
    upload, or a zip that breaks ``budget`` (default from the settings) or holds more than ``max_files`` members.
    """
    if not uploads:
        raise ServiceError("no file uploaded", status=422, hint="send the files in the multipart field 'files'")
    if len(uploads) > max_files:
        raise ServiceError(f"{len(uploads)} files, more than the limit of {max_files}", status=413)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        raw = folder / "raw"
        raw.mkdir()
        staged: list[tuple[Path, str]] = []
        digests: list[str] = []
        names = [shown_name(upload, i) for i, upload in enumerate(uploads)]
        total = 0
        for i, upload in enumerate(uploads):
            target = raw / f"{i:05d}"
            digest, size, kind = await stage_file(upload, target, max_bytes, total)
            total += size
            if size == 0:
                raise ServiceError(f"file #{i + 1} of the upload is empty (0 bytes)", status=422)
            if kind is None:
                raise ServiceError(
                    f"file #{i + 1} of the upload is not DICOM, a zip, NIfTI, NRRD, MHA, PNG or JPEG "
                    "(checked from its content, not its name)",
                    status=415,
                )
            staged.append((target, kind))
            digests.append(digest)
        kinds = {kind for _, kind in staged}
        sha = content_key(digests)
        if len(staged) == 1 and kinds <= {"zip", *VOLUME_KINDS, *IMAGE_KINDS}:
            path, kind = staged[0]
            final = folder / f"upload{SUFFIX[kind]}"
            path.rename(final)
            if kind == "zip":
                budget = budget or Budget.from_settings()
                kind, found = _unzip(final, folder / "dicom", names[0], max_files, budget)
                return StagedUpload(folder, kind, found, sha, total, 1, digests, names)
            if kind in ("nrrd", "mha"):
                check_self_contained(final, folder, names[0])
            return StagedUpload(folder, kind, final, sha, total, 1, digests, names)
        if kinds != {"dicom"}:
            raise ServiceError(
                "several files must all be DICOM; send a volume file, a zip or an image on its own", status=422
            )
        dicom = folder / "dicom"
        dicom.mkdir()
        for i, (path, _) in enumerate(staged):
            path.rename(dicom / f"{i:05d}.dcm")
        return StagedUpload(folder, "dicom", dicom, sha, total, len(staged), digests, names)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def check_self_contained(header: Path, root: Path, shown: str) -> None:
    """Refuse (422) a NRRD / MetaImage header that names data files outside ``root`` or through links.

    Parsed by ctlens (:mod:`ctlens.io.detached_header`) before any library opens the file; the error names
    ``shown`` (the user's file name) only.
    """
    try:
        check_data_files(header, read_header(header), root, what=shown)
    except CTLensError as exc:
        raise ServiceError(f"{shown}: {exc.reason}", status=422, hint="send the voxels in the file itself") from None


def check_expansion(staged: StagedUpload, budget: Budget) -> None:
    """Refuse a compressed volume that is corrupt (422) or expands beyond ``budget`` (413: a decompression bomb).

    A gzip-compressed NIfTI is decompressed piece by piece and counted (nothing is written); a NRRD / MetaImage
    header's declared voxel bytes are checked against the bytes that hold them. Run before analysing, not on
    cache hits (decompressing costs ~20 ms per MB).
    """
    shown = staged.names[0] if staged.names else "the upload"
    try:
        if staged.kind == "nifti_gz":
            stream_size(staged.input_path, budget, what=shown)
        elif staged.kind in ("nrrd", "mha"):
            info = read_header(staged.input_path)
            if info.data_files:
                files = check_data_files(staged.input_path, info, staged.folder, what=shown)
                stored = sum(f.stat().st_size for f in files)
            else:
                stored = staged.input_path.stat().st_size - info.header_bytes
            check_declared(info.declared_bytes, stored, info.compressed, budget, shown)
    except BudgetExceeded as exc:
        raise ServiceError(f"{shown}: {exc.reason}", status=413, hint=exc.hint) from None
    except CTLensError as exc:
        if isinstance(exc, CorruptFileError) and staged.kind == "nifti_gz":
            raise ServiceError("the gzip-compressed NIfTI file is truncated or corrupt", status=422) from None
        raise ServiceError(f"{shown}: {exc.reason}", status=422) from None


def _volume_member(path: Path) -> tuple[str, str] | None:
    """(kind, staged suffix) of an extracted zip member that is a volume file or a volume header, else None."""
    kind = sniff_file(path)
    if kind == "nrrd":
        return "nrrd", ".nhdr" if path.suffix.lower() == ".nhdr" else ".nrrd"
    if kind in ("nifti", "nifti_gz", "mha"):
        return kind, SUFFIX[kind]
    if kind is None and metaimage_data(read_head(path)) == "detached":
        return "mha", ".mhd"
    return None


def _anonymous_dicom_folder(dest: Path, dicom: list[Path]) -> Path:
    """Move the DICOM members into a new folder in ``dest``, named ``00000.dcm``, ...; remove the other members.

    Member names and folders can carry patient names or accession numbers; from here on, reader warnings can only
    name a file by its number.
    """
    folder = Path(tempfile.mkdtemp(prefix="dicom-", dir=dest))  # never a member's own name
    for number, member in enumerate(sorted(dicom)):
        member.rename(folder / f"{number:05d}.dcm")
    for item in sorted(dest.iterdir()):
        if item != folder:
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink(missing_ok=True)
    return folder


def _unzip(zip_path: Path, dest: Path, shown: str, max_files: int, budget: Budget) -> tuple[str, Path]:
    """Extract a zip (checked for traversal, links and bombs first, and within ``budget`` while copying) and return
    ``("dicom", folder)`` with only its DICOM members, or, when it holds none, its one volume (a NIfTI, NRRD or
    MetaImage file, with the data files a header names: they must be in the zip too)."""
    from ctlens.io.archive import safe_extract_zip

    try:
        members = safe_extract_zip(zip_path, dest, max_members=max_files, budget=budget)
    except UnsafeArchiveError as exc:  # bombs too (422, like every unsafe archive)
        raise ServiceError(f"unsafe zip archive {shown}: {exc.reason}", status=422, hint=exc.hint) from None
    except CTLensError as exc:
        raise ServiceError(f"unreadable zip archive {shown}: {exc.reason}", status=422) from None
    zip_path.unlink()
    dicom = [m for m in members if not m.is_symlink() and m.is_file() and sniff_file(m) == "dicom"]
    if dicom:
        return "dicom", _anonymous_dicom_folder(dest, dicom)
    volumes = [(m, found) for m in members if not m.is_symlink() and m.is_file() and (found := _volume_member(m))]
    if len(volumes) != 1:
        what = "no DICOM file and no volume file" if not volumes else f"{len(volumes)} volume files (send one)"
        raise ServiceError(f"the zip archive {shown} holds {what}", status=422)
    (member, (kind, suffix)) = volumes[0]
    inner = f"{shown}/{member.relative_to(dest).as_posix()}"
    if kind in ("nrrd", "mha"):
        check_self_contained(member, dest, inner)
    staged = member.with_name(f"ctlens-input{suffix}")
    if staged.exists():
        raise ServiceError(f"the zip archive {shown} holds a file named {staged.name}", status=422)
    member.rename(staged)
    return kind, staged
