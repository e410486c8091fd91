"""Diffusion b-values and gradient directions as FSL ``.bval`` / ``.bvec`` text, relative to the NIfTI ctlens writes.

The FSL format (FSL FDT user guide, "bvecs and bvals"; BIDS, "Gradient orientation file formats"): ``.bval`` is one
line of ``N`` b-values (s/mm^2), ``.bvec`` three lines (x, y, z) of ``N`` unit vectors, ``0 0 0`` for a volume
without direction (b = 0). The vectors are given **along the image's voxel axes** (i, j, k of the NIfTI file),
not in patient or scanner space, and FSL treats every image as stored "radiologically": where the voxel-to-world
matrix has a positive determinant (neurological storage), the x component is negated (FSL FAQ on bvecs; MRtrix3
documentation, "Diffusion gradient scheme handling", FSL format). dcm2niix writes its ``.bvec`` files the same
way (its notes on DTI: "bvec ... in image space, FSL convention"), which the tests check file against file.

ctlens keeps each volume's direction in patient LPS space (``Volume.meta["bvecs"]``); :func:`fsl_bvecs` turns
them into the voxel frame of the file :func:`ctlens.io.nifti.write_nifti` writes for that volume
(:func:`ctlens.io.lps_ras.nifti_affine`): ``v = inverse(R) @ diag(-1, -1, 1) @ g_lps`` with ``R`` the affine's
3x3 part with unit columns, then ``v_x = -v_x`` when ``det(R) > 0``. The reading side, :func:`read_gradients`
(for :func:`ctlens.io.nifti.read_nifti`), checks the two files beside a NIfTI file and undoes that with the
file's own affine (:func:`lps_bvecs`), whichever tool wrote it.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> vol = Volume(np.zeros((2, 2, 2), np.int16))  # axial as DICOM stores it: det > 0 in RAS, x negated
    >>> fsl_bvecs([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], vol).tolist()
    [[-1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctlens.core.errors import CorruptFileError, CTLensError
from ctlens.core.volume import Volume
from ctlens.io.lps_ras import nifti_affine

__all__ = ["bval_text", "bvec_text", "fsl_bvecs", "gradient_paths", "lps_bvecs", "read_gradients"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def fsl_bvecs(bvecs_lps: Sequence[Sequence[float]], volume: Volume) -> np.ndarray:
    """``3 x N`` FSL b-vectors (module docstring) of directions ``bvecs_lps`` for the NIfTI file of ``volume``.

    Zero vectors stay zero; the others come out with unit length.

    Example:
        >>> import numpy as np
        >>> rows_up = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # rows bottom to top
        >>> fsl_bvecs([[0.0, 0.6, 0.8]], Volume(np.zeros((2, 2, 2)), direction=rows_up)).tolist()
        [[0.0], [-0.6], [0.8]]
    """
    g = np.asarray(bvecs_lps, dtype=np.float64).reshape(-1, 3)
    linear = nifti_affine(volume)[:3, :3]
    rotation = linear / np.linalg.norm(linear, axis=0)
    v = np.linalg.solve(rotation, (_LPS_TO_RAS @ g.T))
    if np.linalg.det(rotation) > 0:
        v[0] = -v[0]
    norms = np.linalg.norm(v, axis=0)
    v = np.where(norms > 1e-12, v / np.where(norms > 1e-12, norms, 1.0), 0.0)
    return v + 0.0  # no negative zeros


def _number(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text in ("-0", "0", "-0.0") or float(text) == 0 else text


def bval_text(bvals: Sequence[float]) -> str:
    """The ``.bval`` file: the b-values on one line, space separated.

    Example:
        >>> bval_text([0.0, 1000.0, 2500.5])
        '0 1000 2500.5\\n'
    """
    return " ".join(_number(b) for b in bvals) + "\n"


def bvec_text(bvecs: np.ndarray) -> str:
    """The ``.bvec`` file: three lines (x, y, z) of one value per volume, 6 significant digits.

    Example:
        >>> bvec_text(np.array([[1.0, 0.0], [0.0, -0.0], [0.0, 0.5]]))
        '1 0\\n0 0\\n0 0.5\\n'
    """
    return "".join(" ".join(_number(x) for x in row) + "\n" for row in np.asarray(bvecs).reshape(3, -1))


def gradient_paths(nifti_path: str | Path) -> tuple[Path, Path]:
    """The ``.bval`` and ``.bvec`` paths beside a ``.nii`` / ``.nii.gz`` file (as dcm2niix names them).

    Example:
        >>> [p.name for p in gradient_paths("out/dwi.nii.gz")]
        ['dwi.bval', 'dwi.bvec']
    """
    path = Path(nifti_path)
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            stem = name[: -len(suffix)]
            return path.with_name(stem + ".bval"), path.with_name(stem + ".bvec")
    raise CTLensError("b-values and b-vectors go beside a NIfTI file", path=path, hint="write .nii or .nii.gz")


# --------------------------------------------------------------------------------------------------------------
# reading


def lps_bvecs(bvecs: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``N x 3`` patient (LPS) directions of ``3 x N`` FSL b-vectors of a NIfTI file with RAS ``affine``.

    The inverse of :func:`fsl_bvecs`: ``v_x = -v_x`` when ``det(R) > 0``, then ``g_lps = diag(-1, -1, 1) @ R @ v``
    (``R``: the affine's 3x3 part with unit columns). Zero vectors stay zero; the others come out with unit length.

    Example:
        >>> import numpy as np
        >>> vol = Volume(np.zeros((2, 2, 2), np.int16))
        >>> lps_bvecs(fsl_bvecs([[0.0, 0.6, 0.8]], vol), nifti_affine(vol)).tolist()
        [[0.0, 0.6, 0.8]]
    """
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    rotation = linear / np.linalg.norm(linear, axis=0)
    v = np.array(bvecs, dtype=np.float64).reshape(3, -1)
    if np.linalg.det(rotation) > 0:
        v[0] = -v[0]
    g = (_LPS_TO_RAS @ rotation @ v).T
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    g = np.where(norms > 1e-12, g / np.where(norms > 1e-12, norms, 1.0), 0.0)
    return np.round(g, 12) + 0.0  # no negative zeros, no 1e-17 residues of the rotation


_MAX_TEXT_BYTES_PER_VOLUME = 200
"""A ``.bvec`` line holds one number per volume; far more text than this per volume is not a gradient file."""


def _numbers(path: Path, image: Path, n_volumes: int) -> list[list[float]]:
    """The lines of ``path`` as numbers (blank lines skipped); CorruptFileError naming ``path`` otherwise."""
    limit = 4096 + _MAX_TEXT_BYTES_PER_VOLUME * 3 * n_volumes
    try:
        size = path.stat().st_size
        if size > limit:
            raise CorruptFileError(
                f"{size} bytes is too large for the gradient file of {n_volumes} volume(s) of {image.name}",
                path=path,
                hint="keep FSL's layout (one value per volume) or remove the file",
            )
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise CorruptFileError(
            f"not an FSL gradient file for {image.name} (not plain text)", path=path, hint="remove or rewrite it"
        ) from None
    except OSError as exc:
        raise CorruptFileError(f"cannot read it ({exc.strerror or exc})", path=path) from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(word) for word in line.replace(",", " ").split()]
        except ValueError:
            raise CorruptFileError(
                f"line {number} holds text that is not a number (gradient file of {image.name})",
                path=path,
                hint="write numbers separated by spaces",
            ) from None
        if not all(np.isfinite(values)):
            raise CorruptFileError(
                f"line {number} holds NaN or infinite values (gradient file of {image.name})",
                path=path,
                hint="write finite numbers; 0 0 0 for a volume without direction",
            )
        rows.append(values)
    return rows


def read_gradients(nifti_path: str | Path, n_volumes: int, affine: np.ndarray) -> tuple[list[float], np.ndarray] | None:
    """b-values and ``N x 3`` LPS directions from the ``.bval`` / ``.bvec`` beside a NIfTI file; None when absent.

    ``.bval``: ``n_volumes`` finite, non-negative numbers (on one line or several); ``.bvec``: three lines of
    ``n_volumes`` numbers (FSL), or ``n_volumes`` lines of three; directions through :func:`lps_bvecs` with the
    image's RAS ``affine``. A file without its partner, a wrong count, text, NaN or infinite values raise
    :class:`~ctlens.core.errors.CorruptFileError` naming the gradient file and the image.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "dwi.bval").write_text("0 1000\\n")
        >>> _ = (folder / "dwi.bvec").write_text("0 -1\\n0 0\\n0 0\\n")
        >>> bvals, bvecs = read_gradients(folder / "dwi.nii.gz", 2, np.diag([-1.0, -1.0, 1.0, 1.0]))
        >>> bvals, bvecs.tolist()
        ([0.0, 1000.0], [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    """
    image = Path(nifti_path)
    bval_path, bvec_path = gradient_paths(image)
    have_bval, have_bvec = bval_path.is_file(), bvec_path.is_file()
    if not (have_bval or have_bvec):
        return None
    if have_bval != have_bvec:
        there, missing = (bval_path, bvec_path) if have_bval else (bvec_path, bval_path)
        raise CorruptFileError(
            f"{there.name} lies beside {image.name} without {missing.name}",
            path=there,
            hint="keep the .bval and .bvec files together, or remove the one left",
        )
    bvals = [x for row in _numbers(bval_path, image, n_volumes) for x in row]
    if len(bvals) != n_volumes or any(b < 0 for b in bvals):
        reason = f"{len(bvals)} b-values" if len(bvals) != n_volumes else "a negative b-value"
        raise CorruptFileError(
            f"{reason} for the {n_volumes} volume(s) of {image.name}",
            path=bval_path,
            hint="write one non-negative b-value (s/mm^2) per volume",
        )
    rows = _numbers(bvec_path, image, n_volumes)
    if len(rows) == 3 and all(len(row) == n_volumes for row in rows):
        fsl = np.array(rows, dtype=np.float64)
    elif n_volumes != 3 and len(rows) == n_volumes and all(len(row) == 3 for row in rows):
        fsl = np.array(rows, dtype=np.float64).T
    else:
        counts = " ".join(str(len(row)) for row in rows[:6]) + (" ..." if len(rows) > 6 else "")
        raise CorruptFileError(
            f"{len(rows)} line(s) of {counts or 'no'} value(s), not 3 lines of {n_volumes} (the volumes of "
            f"{image.name})",
            path=bvec_path,
            hint="write three lines (x, y, z) of one value per volume",
        )
    return [float(b) for b in bvals], lps_bvecs(fsl, affine)
