"""Resample a :class:`~ctlens.core.volume.Volume` to a new voxel spacing (SimpleITK, multi-threaded).

Spacing is given in ctlens **array order** ``(z, y, x)``: NeuroVFM's "1 x 1 x 4 mm" (x, y, z) is
``spacing_zyx=(4.0, 1.0, 1.0)`` here -- 4 mm between slices, 1 mm in-plane.

Output grid (exact, no rounding of positions):

* same ``direction`` as the input;
* ``size = round(extent / new_spacing)`` per axis (half up, at least 1), ``extent = shape * spacing``;
* ``align="center"`` (default): the new grid's field of view is centred on the old one, so the extent
  is kept within a quarter of a new voxel at each end and every output voxel centre lies inside the
  input's extent (no fill values at the edges when upsampling);
* ``align="origin"``: voxel ``[0, 0, 0]`` keeps its world position (NeuroVFM / plain ``sitk.Resample``
  with the input origin); when upsampling, the last voxels may fall outside the input and get
  ``fill_value``.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> v = Volume(np.zeros((10, 8, 8), np.int16), spacing=(2.0, 0.5, 0.5))
    >>> r = resample(v, (4.0, 1.0, 1.0))
    >>> r.shape, r.spacing, r.origin, r.array.dtype
    ((5, 4, 4), (4.0, 1.0, 1.0), (0.25, 0.25, 1.0), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import SimpleITK as sitk

from ctlens.core.volume import Volume

__all__ = ["resample", "resampled_grid"]

Method = Literal["linear", "nearest", "bspline"]
_INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}


def resampled_grid(
    volume: Volume, spacing_zyx: Sequence[float], align: Literal["center", "origin"] = "center"
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """``(shape (z, y, x), origin (LPS mm))`` of the grid :func:`resample` produces (rule: module doc).

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> resampled_grid(Volume(np.zeros((3, 4, 4)), spacing=(3.0, 1.0, 1.0)), (1.0, 1.0, 1.0))
        ((9, 4, 4), (0.0, 0.0, -1.0))
    """
    new = np.asarray([float(s) for s in spacing_zyx])
    if new.shape != (3,) or not (new > 0).all():
        raise ValueError(f"spacing_zyx must be three positive numbers in mm (z, y, x), got {spacing_zyx!r}")
    if align not in ("center", "origin"):
        raise ValueError(f"align must be 'center' or 'origin', got {align!r}")
    old = np.asarray(volume.spacing)
    extent = np.asarray(volume.shape) * old
    shape = np.maximum(1, np.floor(extent / new + 0.5 + 1e-9)).astype(int)
    if align == "center":
        offset_mm = (extent - shape * new) / 2 + (new - old) / 2  # from old voxel-0 centre, per array axis
        origin = volume.world(offset_mm / old)
    else:
        origin = np.asarray(volume.origin)
    return tuple(int(n) for n in shape), tuple(float(o) for o in origin)  # type: ignore[return-value]


def resample(
    volume: Volume,
    spacing_zyx: Sequence[float] = (4.0, 1.0, 1.0),
    method: Method = "linear",
    fill_value: float | None = None,
    align: Literal["center", "origin"] = "center",
) -> Volume:
    """Resample ``volume`` to ``spacing_zyx`` mm (array order ``z, y, x``) with the same direction.

    ``method``: ``"linear"`` (default), ``"nearest"`` (label maps, masks: keeps the dtype) or
    ``"bspline"`` (cubic B-spline, smoother, may overshoot, much slower). Linear / B-spline give
    float32 for integer or bool input and keep float32 / float64. ``fill_value`` is used outside the input grid; default
    -1024 for CT (signed or float values), else 0. A volume already on the target grid comes back as a copy.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> ramp = Volume(np.broadcast_to(np.arange(4.0)[:, None, None], (4, 2, 2)), spacing=(2.0, 1.0, 1.0))
        >>> resample(ramp, (1.0, 1.0, 1.0)).array[:, 0, 0].tolist()
        [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]
        >>> resample(ramp, (1.0, 1.0, 1.0), align="origin").array[:, 0, 0].tolist()  # last voxel outside
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, -1024.0]
    """
    if method not in _INTERPOLATORS:
        raise ValueError(f"method must be one of {', '.join(_INTERPOLATORS)}, got {method!r}")
    shape, origin = resampled_grid(volume, spacing_zyx, align)
    spacing = tuple(float(s) for s in spacing_zyx)
    arr = np.asarray(volume.array)
    in_dtype = arr.dtype
    if fill_value is None:
        is_ct = str(volume.modality or "").upper() == "CT"
        fill_value = -1024.0 if is_ct and in_dtype.kind in "if" else 0.0  # masks / unsigned: 0
    if method == "nearest":
        out_dtype = in_dtype
    else:
        out_dtype = in_dtype if in_dtype in (np.float32, np.float64) else np.dtype(np.float32)
    if shape == volume.shape and np.allclose(spacing, volume.spacing) and np.allclose(origin, volume.origin):
        return volume.with_array(arr.astype(out_dtype, copy=True), spacing=spacing, origin=origin)

    if in_dtype.kind == "b":
        arr = arr.view(np.uint8)
    elif in_dtype == np.float16:
        arr = arr.astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    spacing_xyz, origin_in, direction_xyz = volume.itk_geometry()
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin_in)
    image.SetDirection(direction_xyz)

    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in shape[::-1]])
    resampler.SetOutputSpacing(spacing[::-1])
    resampler.SetOutputOrigin(origin)
    resampler.SetOutputDirection(direction_xyz)
    resampler.SetInterpolator(_INTERPOLATORS[method])
    resampler.SetDefaultPixelValue(float(fill_value))
    if method != "nearest":  # interpolate (in double) straight into a float output, never a truncating integer
        resampler.SetOutputPixelType(sitk.sitkFloat64 if out_dtype == np.float64 else sitk.sitkFloat32)
    out = sitk.GetArrayFromImage(resampler.Execute(image))
    if in_dtype.kind == "b" and method == "nearest":
        out = out.astype(bool)
    return volume.with_array(out.astype(out_dtype, copy=False), spacing=spacing, origin=origin)
