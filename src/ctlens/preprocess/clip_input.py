"""The 3D CLIP input array of a CT volume: one fixed-shape uint8 grid, as the HDF5 export stores it.

:func:`to_clip_array` runs five steps, the same for training (:mod:`ctlens.cache.hdf5_export`) and inference
(:mod:`ctlens.pipelines.embed`):

1. **orientation** (exact, :func:`~ctlens.preprocess.orientation.reorient`): NIfTI codes ``RAS`` for
   ``slice_order="b2u"`` (bottom to up), ``RAI`` for ``"u2b"`` (up to bottom). In ctlens **array order**
   ``[z, y, x]`` the stored array's axes point ``(S, A, R)`` resp. ``(I, A, R)``: axis 0 is the slice axis
   (``b2u``: index 0 is the most inferior slice, the index grows towards the head), axis 1 grows towards
   Anterior (row 0 is the patient's back), axis 2 grows towards the patient's Right (column 0 is the
   patient's left side);
2. **HU clip** to ``hu_clip`` (default ``[-1000, 1000]``);
3. **aspect-preserving resize**: one isotropic spacing ``s = max(extent_mm / target_shape)`` for all three
   axes (``extent_mm = shape * spacing``), so the physical proportions are kept and the volume fits
   ``target_shape``; Gaussian anti-aliasing before down-sampling (sigma ``(factor - 1) / 2`` voxels, the
   rule of scikit-image's ``resize``), then linear interpolation (SimpleITK), grid centred on the input;
4. **centre pad** to ``target_shape`` with ``hu_clip[0]`` (extra voxel after when odd);
5. **uint8**: ``u = round((hu - lo) / (hi - lo) * 255)``; back to HU: ``hu = lo + u * (hi - lo) / 255``.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> ct = np.full((10, 64, 64), -1000, np.int16); ct[2:8, 16:48, 16:48] = 40
    >>> arr, attrs = to_clip_array(Volume(ct, spacing=(5.0, 1.0, 1.0)), target_shape=(32, 48, 48))
    >>> arr.shape, arr.dtype, attrs["spacing"], attrs["resized_shape"]
    ((32, 48, 48), dtype('uint8'), (1.5625, 1.5625, 1.5625), (32, 41, 41))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ctlens.core.volume import Volume

__all__ = ["NIFTI_CODES", "SliceOrder", "check_clip_args", "to_clip_array"]

SliceOrder = Literal["b2u", "u2b"]
NIFTI_CODES: dict[str, str] = {"b2u": "RAS", "u2b": "RAI"}
"""NIfTI orientation codes of the output for each slice order (``b2u``: bottom to up, ``u2b``: up to bottom)."""


def check_clip_args(
    target_shape: Sequence[int], slice_order: str, hu_clip: Sequence[float]
) -> tuple[tuple[int, ...], float, float]:
    """``(shape, lo, hi)`` from :func:`to_clip_array`'s arguments; ``ValueError`` naming a bad one.

    Example:
        >>> check_clip_args([8, 16, 16], "b2u", (-1000, 1000))
        ((8, 16, 16), -1000.0, 1000.0)
    """
    shape = tuple(int(n) for n in target_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"target_shape must be three positive integers (z, y, x), got {target_shape!r}")
    if slice_order not in NIFTI_CODES:
        raise ValueError(f"slice_order must be 'b2u' (bottom to up) or 'u2b' (up to bottom), got {slice_order!r}")
    lo, hi = (float(v) for v in hu_clip)
    if not hi > lo:
        raise ValueError(f"hu_clip must be (low, high) with high > low, got {hu_clip!r}")
    return shape, lo, hi


def _antialias(arr: np.ndarray, old: Sequence[float], new: float) -> np.ndarray:
    """Gaussian pre-filter along each down-sampled axis: sigma = (factor - 1) / 2 voxels (scikit-image's rule)."""
    from scipy import ndimage

    sigma = [max(0.0, (new / s - 1.0) / 2.0) for s in old]
    if max(sigma) <= 0:
        return arr
    return ndimage.gaussian_filter(arr, sigma=sigma, mode="nearest", truncate=3.0)


def to_clip_array(
    volume: Volume,
    target_shape: Sequence[int] = (160, 224, 224),
    slice_order: SliceOrder = "b2u",
    hu_clip: Sequence[float] = (-1000.0, 1000.0),
    *,
    antialias: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``(uint8 array of target_shape, attrs)``: the module doc's five steps on one CT volume.

    ``attrs`` holds the HDF5 dataset attributes (geometry after resize and padding, original shape /
    spacing in the output's axis order, clip, slice order); see ``docs/hdf5_export.md``.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.arange(4 * 8 * 8, dtype=np.int16).reshape(4, 8, 8) - 1000, spacing=(2.0, 1.0, 1.0))
        >>> arr, attrs = to_clip_array(v, target_shape=(8, 8, 8), antialias=False)
        >>> attrs["axcodes"], attrs["nifti_axcodes"], int(arr[0].mean()) < int(arr[-1].mean())
        ('SAR', 'RAS', True)
    """
    from ctlens.io.lps_ras import lps_to_ras_affine
    from ctlens.preprocess.orientation import axcodes, reorient
    from ctlens.preprocess.resample import resample

    target, lo, hi = check_clip_args(target_shape, slice_order, hu_clip)
    oriented = reorient(volume, NIFTI_CODES[slice_order])
    clipped = np.clip(np.asarray(oriented.array, dtype=np.float32), lo, hi)
    extent = np.asarray(oriented.shape, dtype=np.float64) * np.asarray(oriented.spacing)
    step = float(np.max(extent / np.asarray(target)))
    if antialias:
        clipped = _antialias(clipped, oriented.spacing, step)
    resized = resample(oriented.with_array(clipped), (step, step, step), method="linear", fill_value=lo)
    arr = resized.array
    # rounding can never exceed the target (extent / step <= target), but guard against float noise
    over = [max(0, n - t) for n, t in zip(arr.shape, target, strict=True)]
    if any(over):
        arr = arr[tuple(slice(o // 2, o // 2 + min(n, t)) for o, n, t in zip(over, arr.shape, target, strict=True))]
        resized = resized.with_array(arr, origin=tuple(resized.world([o // 2 for o in over]).tolist()))
    before = [(t - n) // 2 for n, t in zip(arr.shape, target, strict=True)]
    widths = [(b, t - n - b) for b, n, t in zip(before, arr.shape, target, strict=True)]
    padded = np.pad(arr, widths, mode="constant", constant_values=lo)
    scaled = np.rint((np.clip(padded, lo, hi) - lo) * (255.0 / (hi - lo)))
    out = np.ascontiguousarray(scaled.astype(np.uint8))
    grid = resized.with_array(out, origin=tuple(resized.world([-b for b in before]).tolist()))
    lps = grid.affine
    ras_xyz = lps_to_ras_affine(lps)  # NIfTI affine: index (i, j, k) = (x, y, z) -> RAS mm
    attrs: dict[str, Any] = {
        "spacing": (step, step, step),
        "original_shape": tuple(int(n) for n in oriented.shape),
        "original_spacing": tuple(float(s) for s in oriented.spacing),
        "resized_shape": tuple(int(n) for n in arr.shape),
        "pad_before": tuple(int(b) for b in before),
        "hu_clip": (lo, hi),
        "slice_order": slice_order,
        "axcodes": "".join(axcodes(grid)),
        "nifti_axcodes": NIFTI_CODES[slice_order],
        "affine_lps_zyx": lps,
        "affine_ras_xyz": ras_xyz,
    }
    return out, attrs
