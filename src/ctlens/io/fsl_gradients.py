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
3x3 part with unit columns, then ``v_x = -v_x`` when ``det(R) > 0``.

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

from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume
from ctlens.io.lps_ras import nifti_affine

__all__ = ["bval_text", "bvec_text", "fsl_bvecs", "gradient_paths"]

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
