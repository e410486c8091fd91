"""Receiving uploads safely: the multipart form, size and file-count caps, content sniffing, zip checks, staging.

Files are streamed into a private staging folder under the service folder and named by their sniffed kind
(``0000.dcm``, ``upload.nii.gz`` ...): uploaded names never reach the file system, so they cannot traverse
paths, and they are never logged (they may hold patient names). The SHA-256 of the content (one file: its
digest; several: the digest of their sorted digests, so order does not matter) is the cache and idempotency key;
one chosen series of an upload has its own key (:func:`series_key`). Anything refused leaves nothing behind.

Example:
    >>> content_key(["b" * 64, "a" * 64]) == content_key(["a" * 64, "b" * 64])
    True
    >>> series_key("a" * 64, "2") == series_key("a" * 64, "3")
    False
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from ctlens.api.sniff import SUFFIX, gunzipped_size, sniff, sniff_file
from ctlens.core.errors import CTLensError, ServiceError, UnsafeArchiveError
from ctlens.io.dicom_magic import HEAD_BYTES

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


async def stage_uploads(uploads: list, folder: Path, *, max_bytes: int, max_files: int):
    """Stage the uploaded files into ``folder`` (created) and return a :class:`StagedUpload`.

    Raises :class:`ServiceError` (4xx) for no file, too many files, too many bytes, an empty file, a file
    whose content is not an accepted format, or a mix that is not one volume.
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
                return StagedUpload(folder, "dicom", _unzip_dicom(final, folder / "dicom"), sha, total, 1, digests)
            return StagedUpload(folder, kind, final, sha, total, 1, digests)
        if kinds != {"dicom"}:
            raise ServiceError(
                "several files must all be DICOM; send a volume file, a zip or an image on its own", status=422
            )
        dicom = folder / "dicom"
        dicom.mkdir()
        for i, (path, _) in enumerate(staged):
            path.rename(dicom / f"{i:05d}.dcm")
        return StagedUpload(folder, "dicom", dicom, sha, total, len(staged), digests)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def check_expansion(staged: StagedUpload, limit: int) -> None:
    """Refuse a gzip-compressed NIfTI that is corrupt or expands beyond ``limit`` bytes (a gzip bomb).

    Run before analysing, not on cache hits (decompressing costs ~20 ms per MB).
    """
    if staged.kind != "nifti_gz":
        return
    expanded = gunzipped_size(staged.input_path, limit)
    if expanded is None:
        raise ServiceError("the gzip-compressed NIfTI file is truncated or corrupt", status=422)
    if expanded > limit:
        raise ServiceError(f"the gzip-compressed NIfTI expands beyond {limit} bytes", status=413)


def _unzip_dicom(zip_path: Path, dest: Path) -> Path:
    """Extract a zip (checked for traversal, links and bombs first) and keep only DICOM members."""
    from ctlens.io.archive import safe_extract_zip

    try:
        members = safe_extract_zip(zip_path, dest)
    except UnsafeArchiveError as exc:
        raise ServiceError(f"unsafe zip archive: {exc.reason}", status=422) from None
    except CTLensError as exc:
        raise ServiceError(f"unreadable zip archive: {exc.reason}", status=422) from None
    zip_path.unlink()
    kept = 0
    for member in members:
        if member.is_symlink() or not member.is_file() or sniff_file(member) != "dicom":
            member.unlink(missing_ok=True)
        else:
            kept += 1
    if kept == 0:
        raise ServiceError("the zip archive holds no DICOM file", status=422)
    return dest
