"""Several volumes of one series (time points, diffusion directions) as one 4-D NIfTI file, as dcm2niix writes them.

:func:`write_nifti_volumes` stacks volumes that share one grid along NIfTI's 4th axis (``[x, y, z, t]``), with the
header choices of :func:`ctlens.io.nifti.write_nifti` (sform and qform code 1 from
:func:`ctlens.io.lps_ras.nifti_affine`, units mm and s, no scaling). A diffusion series also gets FSL ``.bval`` and
``.bvec`` files beside it (:mod:`ctlens.io.fsl_gradients`); the image and its gradient files appear together or
not at all (:func:`ctlens.io.files.atomic_output`).

Example:
    >>> import tempfile, pathlib
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "dwi.nii.gz"
    >>> vols = [Volume(np.full((2, 3, 4), k, np.int16), modality="MR") for k in range(3)]
    >>> [p.name for p in write_nifti_volumes(vols, out, bvals=[0, 1000, 1000], bvecs=[[0, 0, 0], [1, 0, 0], [0, 0, 1]])]
    ['dwi.bval', 'dwi.bvec', 'dwi.nii.gz']
    >>> nib.load(out).shape, (out.parent / "dwi.bval").read_text()
    ((4, 3, 2, 3), '0 1000 1000\\n')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ctlens.core.errors import CTLensError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io.files import atomic_output
from ctlens.io.fsl_gradients import bval_text, bvec_text, fsl_bvecs, gradient_paths
from ctlens.io.lps_ras import nifti_affine

__all__ = ["write_nifti_volumes"]

_SAME_GRID_MM = 1e-4
"""Volumes whose affines differ by more than this (mm) do not share one grid."""


def _stacked(volumes: Sequence[Volume], path: Path) -> np.ndarray:
    first = volumes[0]
    for k, vol in enumerate(volumes[1:], start=1):
        if vol.shape != first.shape or not np.allclose(vol.affine, first.affine, atol=_SAME_GRID_MM):
            raise CTLensError(
                f"volume {k} lies on another grid than volume 0 ({vol.shape} vs {first.shape} voxels)",
                path=path,
                hint="write the volumes one at a time (--volume k)",
            )
    dtype = np.result_type(*(v.array.dtype for v in volumes))
    if dtype == np.bool_:
        dtype = np.dtype(np.uint8)
    elif dtype == np.float16:
        dtype = np.dtype(np.float32)
    if dtype.kind not in "iuf":
        raise UnsupportedFormatError(
            f"cannot store voxel type {dtype} in NIfTI", path=path, hint="convert the array to int or float"
        )
    data = np.stack([v.array.astype(dtype, copy=False).transpose(2, 1, 0) for v in volumes], axis=-1)
    return data[..., 0] if len(volumes) == 1 else data


def write_nifti_volumes(
    volumes: Sequence[Volume],
    path: str | Path,
    *,
    bvals: Sequence[float] | None = None,
    bvecs: Sequence[Sequence[float]] | None = None,
) -> list[Path]:
    """Write ``volumes`` (one grid) as one NIfTI file, 4-D when there are several; the paths written.

    ``bvals`` / ``bvecs`` (one per volume; directions in patient LPS, as ``Volume.meta["bvecs"]``): also write
    ``.bval`` / ``.bvec`` beside it in FSL's convention (:mod:`ctlens.io.fsl_gradients`). Raises
    :class:`~ctlens.core.errors.CTLensError` naming ``path`` when the volumes do not share one grid or the
    gradient table does not have one entry per volume; nothing is written then.
    """
    path = Path(path)
    if not volumes:
        raise CTLensError("no volumes to write", path=path)
    if not re.search(r"\.nii(\.gz)?$", path.name, flags=re.IGNORECASE):
        raise UnsupportedFormatError(
            "a NIfTI file name must end in .nii or .nii.gz", path=path, hint="choose a .nii or .nii.gz path"
        )
    if bvals is not None and (len(bvals) != len(volumes) or (bvecs is not None and len(bvecs) != len(volumes))):
        raise CTLensError(
            f"{len(volumes)} volumes but {len(bvals)} b-values and {len(bvecs or [])} b-vectors",
            path=path,
            hint="give one b-value and one direction per volume",
        )
    data = _stacked(volumes, path)
    affine = nifti_affine(volumes[0])
    image_class = nib.Nifti2Image if max(data.shape) > 32767 else nib.Nifti1Image
    img = image_class(data, affine, dtype=data.dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    modality = str(volumes[0].modality or "")
    img.header["descrip"] = f"ctlens modality={modality}" if re.fullmatch(r"[A-Z]{2,8}", modality) else "ctlens"
    names: list[str] = []
    with atomic_output(path) as tmp:
        if bvals is not None:
            directions = bvecs if bvecs is not None else [[0.0, 0.0, 0.0]] * len(volumes)
            bval_path, bvec_path = gradient_paths(tmp)
            bval_path.write_text(bval_text(bvals))
            bvec_path.write_text(bvec_text(fsl_bvecs(directions, volumes[0])))
            names += [bval_path.name, bvec_path.name]
        nib.save(img, tmp)
    return [path.with_name(name) for name in names] + [path]
