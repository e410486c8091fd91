"""LPS <-> RAS: the one place that converts between ctlens geometry and NIfTI / nibabel geometry.

ctlens (like DICOM and ITK) works in patient **LPS** space (x to the patient's Left, y to Posterior, z to
Superior) and indexes arrays ``[z, y, x]``; the :class:`~ctlens.core.volume.Volume` affine maps an index
``(z, y, x, 1)`` to LPS mm. NIfTI (and nibabel) work in **RAS** space (x to Right, y to Anterior, z to
Superior) and store arrays ``[x, y, z]``; the NIfTI affine maps ``(i, j, k, 1) = (x, y, z, 1)`` to RAS mm.

Two fixed matrices do the conversion, both their own inverse:

* ``F = diag(-1, -1, 1, 1)`` flips LPS <-> RAS (negate the first two world coordinates);
* ``P`` swaps index 0 and index 2 (``(x, y, z, 1)`` <-> ``(z, y, x, 1)``);

so ``A_ras_xyz = F @ A_lps_zyx @ P`` and ``A_lps_zyx = F @ A_ras_xyz @ P``.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> v = Volume(np.zeros((2, 3, 4), np.int16), spacing=(5.0, 0.5, 0.5), origin=(10.0, 20.0, 30.0))
    >>> nifti_affine(v)[:3, 3].tolist(), axcodes(v)
    ([-10.0, -20.0, 30.0], ('S', 'P', 'L'))
"""

from __future__ import annotations

import numpy as np
from nibabel.orientations import aff2axcodes

from ctlens.core.volume import MAX_POSITION_MM, Volume, position_in_range, spacing_in_range

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
"""LPS <-> RAS: negate the first two world coordinates (its own inverse)."""

_SWAP = np.array(
    [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
)
"""Index permutation ``(x, y, z, 1)`` <-> ``(z, y, x, 1)`` (its own inverse)."""


def _as_affine(affine: np.ndarray) -> np.ndarray:
    out = np.asarray(affine, dtype=np.float64)
    if out.shape != (4, 4):
        raise ValueError(f"an affine must be 4x4, got shape {out.shape}")
    return out


def lps_to_ras_affine(affine_zyx_lps: np.ndarray) -> np.ndarray:
    """NIfTI/nibabel affine (index ``(x, y, z)`` -> RAS mm) from a ctlens affine (index ``(z, y, x)`` -> LPS mm).

    Example:
        >>> import numpy as np
        >>> lps = np.eye(4)[[2, 1, 0, 3]] * [2.0, 1.0, 1.0, 1.0]  # axial, 2 mm slices
        >>> lps[:3, 3] = [5.0, 6.0, 7.0]
        >>> lps_to_ras_affine(lps).tolist()[:3]
        [[-1.0, 0.0, 0.0, -5.0], [0.0, -1.0, 0.0, -6.0], [0.0, 0.0, 2.0, 7.0]]
    """
    return _FLIP @ _as_affine(affine_zyx_lps) @ _SWAP


def ras_to_lps_affine(affine_ras_xyz: np.ndarray) -> np.ndarray:
    """ctlens affine (index ``(z, y, x)`` -> LPS mm) from a NIfTI/nibabel affine; inverse of :func:`lps_to_ras_affine`.

    Example:
        >>> import numpy as np
        >>> a = np.array([[0.0, 1, 0, 3], [2, 0, 0, 4], [0, 0, 3, 5], [0, 0, 0, 1]])
        >>> np.array_equal(lps_to_ras_affine(ras_to_lps_affine(a)), a)
        True
    """
    return _FLIP @ _as_affine(affine_ras_xyz) @ _SWAP


def nifti_affine(volume: Volume) -> np.ndarray:
    """The RAS affine NIfTI stores for ``volume``: maps ``(x, y, z, 1)`` of the array transposed to ``[x, y, z]``.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.zeros((2, 3, 4)), spacing=(3.0, 2.0, 1.0))
        >>> np.diag(nifti_affine(v)).tolist()
        [-1.0, -2.0, 3.0, 1.0]
    """
    return lps_to_ras_affine(volume.affine)


def volume_geometry_from_nifti_affine(
    affine_ras_xyz: np.ndarray,
) -> tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray]:
    """``(spacing_zyx, origin_lps, direction_zyx)`` for a :class:`Volume` from a NIfTI RAS affine.

    Spacing is the length of each array axis' column, direction the unit columns (in array order
    ``z, y, x``), origin the LPS position of voxel ``[0, 0, 0]``. Raises ``ValueError`` for an affine
    that is not finite or cannot map a 3-D grid (a zero-length or linearly dependent axis).

    Example:
        >>> import numpy as np
        >>> spacing, origin, direction = volume_geometry_from_nifti_affine(np.diag([-0.5, -0.5, 3.0, 1.0]))
        >>> spacing, origin, direction[:, 0].tolist()
        ((3.0, 0.5, 0.5), (0.0, 0.0, 0.0), [0.0, 0.0, 1.0])
    """
    lps = ras_to_lps_affine(affine_ras_xyz)
    if not np.all(np.isfinite(lps)):
        raise ValueError("the affine holds non-finite numbers")
    linear = lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if not spacing_in_range(spacing):
        raise ValueError(f"voxel sizes {spacing.tolist()} mm are not between 1e-6 and 1e6 (a zero-length axis?)")
    direction = linear / spacing[None, :]
    if abs(np.linalg.det(direction)) < 1e-6:
        raise ValueError("the affine's axes are linearly dependent (singular direction matrix)")
    if not position_in_range(lps[:3, 3]):
        raise ValueError(f"origin {lps[:3, 3].tolist()} mm is not within +-{MAX_POSITION_MM:g} mm")
    return (
        tuple(float(s) for s in spacing),  # type: ignore[return-value]
        tuple(float(o) for o in lps[:3, 3]),
        direction,
    )


def axcodes(volume: Volume) -> tuple[str, str, str]:
    """Orientation codes of the array axes **in array order** ``(z, y, x)``, nibabel convention.

    Each letter names the patient direction in which that array index *increases* (nibabel's
    :func:`~nibabel.orientations.aff2axcodes` on the RAS affine, ``R``/``L``, ``A``/``P``, ``S``/``I``).
    A NIfTI file nibabel calls ``('R', 'A', 'S')`` (codes for its ``x, y, z`` axes) therefore reads as
    ``('S', 'A', 'R')`` here; a usual DICOM axial series sorted feet to head is ``('S', 'P', 'L')``.
    Note that ITK / DICOM orientation strings such as ``"RAI"`` name where axes come *from* and are not
    the same convention.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> axcodes(Volume(np.zeros((2, 2, 2))))
        ('S', 'P', 'L')
    """
    codes = aff2axcodes(_FLIP @ volume.affine)
    return tuple(str(c) for c in codes)  # type: ignore[return-value]
