"""NeuroVFM-style preparation of one volume for a model: orientation, spacing, padding, intensities, mask.

Steps of :func:`prepare_for_inference`:

1. mode (``"ct"`` / ``"mri"``) given or detected (:func:`~ctlens.preprocess.mode.detect_mode`, logged);
2. :func:`to_model_grid`: reorient to RPI (exact), resample to 4 mm between slices and 1 mm in-plane
   (linear), bring the slice axis to array axis 0, centre-pad to a multiple of the patch (4, 16, 16)
   with air (-1024 HU) for CT or 0 for MR;
3. intensities: CT -> NeuroVFM's three windows ``brain`` (W80/L40), ``blood`` (W200/L80), ``bone``
   (W2800/L600); MR -> ``mri`` (0.5--99.5 percentile normalization of the nonzero voxels); float32 in [0, 1];
4. foreground mask (uint8) on the same grid (:func:`~ctlens.preprocess.masks.foreground_mask`).

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> ct = np.full((10, 40, 40), -1000, np.int16); ct[:, 8:32, 8:32] = 40
    >>> arrs, mask, view = prepare_for_inference(Volume(ct, spacing=(2.0, 1.0, 1.0)), mode="ct")
    >>> sorted(arrs), arrs["brain"].shape, mask.dtype, view
    (['blood', 'bone', 'brain'], (8, 48, 48), dtype('uint8'), 'axial')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ctlens.core.volume import Volume
from ctlens.preprocess.crop_pad import pad_to_multiple
from ctlens.preprocess.masks import foreground_mask
from ctlens.preprocess.mode import detect_mode
from ctlens.preprocess.orientation import permute_axes, reorient, slice_axis, slice_plane
from ctlens.preprocess.resample import Method, resample
from ctlens.preprocess.windows import apply_window, mr_normalize

__all__ = ["CT_CHANNELS", "load_image", "prepare_for_inference", "to_model_grid"]

log = logging.getLogger(__name__)

CT_CHANNELS = ("brain", "blood", "bone")
"""NeuroVFM's CT input channels, names of :data:`~ctlens.preprocess.windows.WINDOWS`, in model order."""


def _mode(mode: str) -> str:
    m = {"mr": "mri"}.get(str(mode).lower(), str(mode).lower())
    if m not in ("ct", "mri"):
        raise ValueError(f"mode must be 'ct' or 'mri' (or None to detect it), got {mode!r}")
    return m


def to_model_grid(
    volume: Volume,
    *,
    z_dim: int | None = None,
    spacing: Sequence[float] = (4.0, 1.0, 1.0),
    patch: Sequence[int] = (4, 16, 16),
    fill_value: float | None = None,
    method: Method = "linear",
) -> Volume:
    """The volume on the model's grid: RPI, resampled, slice axis first, padded to a multiple of ``patch``.

    * reorient to NeuroVFM's RPI (NIfTI order; array axes point Inferior, Posterior, Right);
    * ``z_dim``: which array axis of the RPI volume is the slice axis -- 0 (I/S, axial), 1 (P/A,
      coronal) or 2 (R/L, sagittal); ``None`` takes the acquisition's slice axis
      (:func:`~ctlens.preprocess.orientation.slice_axis`). NeuroVFM counts the same axis in ITK order:
      its ``z_dim`` is ``2 - z_dim`` here;
    * ``spacing`` is ``(slice, in-plane, in-plane)`` mm and ``patch`` ``(slice, in-plane, in-plane)``
      voxels, both in the output's array order: the slice axis is swapped with axis 0 (as NeuroVFM
      does), so an axial volume stays exactly RPI and a coronal / sagittal one is RPI with two axes swapped;
    * padding: centred, ``fill_value`` (default -1024 for CT, else 0).

    The returned Volume carries the exact geometry (origin moved by the padding), so every value can be
    placed back in patient space.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> from ctlens.preprocess.orientation import axcodes
        >>> g = to_model_grid(Volume(np.zeros((6, 20, 20), np.int16), spacing=(3.0, 0.9, 0.9)))
        >>> g.shape, g.spacing, axcodes(g)
        ((8, 32, 32), (4.0, 1.0, 1.0), ('I', 'P', 'R'))
    """
    rpi = reorient(volume, "RPI")
    axis = slice_axis(rpi) if z_dim is None else int(z_dim)
    if axis not in (0, 1, 2):
        raise ValueError(f"z_dim must be 0 (axial), 1 (coronal), 2 (sagittal) or None, got {z_dim!r}")
    swap = [0, 1, 2]
    swap[0], swap[axis] = axis, 0
    target = tuple(float(s) for s in spacing)
    grid = resample(rpi, tuple(target[swap[a]] for a in range(3)), method=method, fill_value=fill_value)
    if axis != 0:
        grid = permute_axes(grid, swap)
    return pad_to_multiple(grid, patch, value=fill_value)


def prepare_for_inference(
    volume: Volume,
    mode: str | None = None,
    z_dim: int | None = None,
    spacing: Sequence[float] = (4.0, 1.0, 1.0),
    patch: Sequence[int] = (4, 16, 16),
    *,
    method: Method = "linear",
) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """``(img_arrs, mask, view)`` ready for a NeuroVFM-style model (module doc lists the steps).

    * ``img_arrs``: CT -> ``{'brain', 'blood', 'bone'}``, MR -> ``{'mri'}``; float32 ``[D, H, W]`` in [0, 1];
    * ``mask``: uint8 foreground mask on the same grid (1 = body); feed it to
      :func:`~ctlens.preprocess.masks.token_background_flags` for NeuroVFM's per-token flags;
    * ``view``: acquisition plane of the input (``'axial'``, ``'coronal'`` or ``'sagittal'``), from its
      slice axis before reorientation.

    ``mode=None`` detects CT / MR and logs the choice (INFO). ``z_dim``, ``spacing`` and ``patch`` are
    those of :func:`to_model_grid` (use it directly to keep the output geometry).

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> mr = np.zeros((3, 30, 30), np.float32); mr[:, 5:25, 5:25] = 300.0
        >>> arrs, mask, view = prepare_for_inference(Volume(mr, spacing=(5.0, 1.0, 1.0), modality="MR"))
        >>> list(arrs), arrs["mri"].shape, int(mask.max())
        (['mri'], (4, 32, 32), 1)
    """
    if mode is None:
        mode, reason = detect_mode(volume)
        log.info("prepare_for_inference: mode %s (%s)", mode, reason)
    mode = _mode(mode)
    view = slice_plane(volume)
    fill = -1024.0 if mode == "ct" else 0.0
    grid = to_model_grid(volume, z_dim=z_dim, spacing=spacing, patch=patch, fill_value=fill, method=method)
    arr = grid.array
    if mode == "ct":
        img_arrs = {name: apply_window(arr, name) for name in CT_CHANNELS}
    else:
        img_arrs = {"mri": mr_normalize(arr)}
    mask = foreground_mask(arr, mode).astype(np.uint8)
    return img_arrs, mask, view


def load_image(path: str | os.PathLike[str], **options: Any) -> Volume:
    """Read any image ctlens reads (DICOM folder / zip, NIfTI, NRRD / MHA, ...) as a Volume.

    A thin wrapper of :func:`ctlens.io.loader.load` (imported on first use); ``options`` go to it.

    Example:
        >>> import pathlib, tempfile, nibabel as nib, numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ct.nii.gz"
        >>> nib.save(nib.Nifti1Image(np.full((4, 5, 6), -1000, np.int16), np.diag([-1.0, -1.0, 3.0, 1.0])), path)
        >>> v = load_image(path)
        >>> v.shape, v.spacing
        ((6, 5, 4), (3.0, 1.0, 1.0))
    """
    from ctlens.io.loader import load

    return load(path, **options)
