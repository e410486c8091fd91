"""NIfTI header extensions checked before nibabel reads them (issue #21).

nibabel reads each extension's declared size into memory (twice: it strips trailing NULs into a copy), trusting
the size; in a ``.nii.gz`` a few hundred kilobytes can declare and hold a gigabyte. :func:`check_extensions` walks
the extension records itself, skipping their contents, and refuses too many, too large or one that runs past the
start of the voxel data (where the standard ends them).

Example:
    >>> import tempfile, pathlib, nibabel as nib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.nii"
    >>> nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), p)
    >>> check_extensions(p)
"""

from __future__ import annotations

from pathlib import Path

import nibabel.openers
import numpy as np

from ctlens.core.errors import CorruptFileError, CTLensError

__all__ = ["MAX_EXTENSIONS", "MAX_EXTENSION_BYTES", "check_extensions"]

MAX_EXTENSIONS = 1000
"""Most header extensions read (real files hold one to three: AFNI, DICOM, CIFTI XML)."""
MAX_EXTENSION_BYTES = 64 * 1024**2
"""Most bytes of header extensions read: nibabel holds each one in memory twice, so a ``.nii.gz`` whose extension
sizes claim a highly compressible gigabyte would exhaust memory (found by fuzzing)."""


def check_extensions(path: Path) -> None:
    """Refuse header extensions beyond :data:`MAX_EXTENSIONS` / :data:`MAX_EXTENSION_BYTES`, or one that runs past
    the voxel data's start, before nibabel reads them (their contents are skipped here, not held).

    A file that is no NIfTI at all, or whose extension records nibabel refuses anyway, is left to nibabel.

    Example:
        >>> import tempfile, pathlib, nibabel as nib, numpy as np
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.nii.gz"
        >>> img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
        >>> img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment"))
        >>> nib.save(img, p)
        >>> check_extensions(p)
    """
    try:
        with nibabel.openers.ImageOpener(path, "rb") as fobj:
            head = fobj.read(552)
            size = int.from_bytes(head[:4], "little")
            order = "<" if size in (348, 540) else ">"
            size = int.from_bytes(head[:4], "big") if order == ">" else size
            if size not in (348, 540) or len(head) < size + 4 or head[size : size + 1] == b"\0":
                return
            if size == 348:
                vox_offset = float(np.frombuffer(head, f"{order}f4", 1, 108)[0])
            else:
                vox_offset = float(np.frombuffer(head, f"{order}i8", 1, 168)[0])
            pos = size + 4
            fobj.seek(pos)
            count = total = 0
            while vox_offset - pos >= 16:
                record = fobj.read(8)
                if len(record) < 8:
                    return
                esize = int(np.frombuffer(record, f"{order}i4", 1)[0])
                if esize < 8:
                    return  # nibabel refuses it
                count, total = count + 1, total + esize
                if esize > vox_offset - pos or count > MAX_EXTENSIONS or total > MAX_EXTENSION_BYTES:
                    raise CorruptFileError(
                        f"header extension {count} of {esize} bytes: more than {MAX_EXTENSIONS} extensions, "
                        f"more than {MAX_EXTENSION_BYTES} bytes of them, or past the voxel data's start",
                        path=path,
                        hint="re-export the file without header extensions",
                    )
                pos += esize
                fobj.seek(pos)
    except CTLensError:
        raise
    except Exception:  # noqa: BLE001 - unreadable, truncated, not gzip: nibabel reports it with its reason
        return
