"""``interpolate()``: thick-slice CT to thin slices, with exact output geometry.

Methods (``METHODS``):

* ``nearest``, ``linear``, ``cubic`` (cubic B-spline) -- baselines along the slice axis;
* ``flow`` -- dense optical flow between neighbouring slices, both warped to the intermediate position
  and blended (:mod:`ctlens.pipelines.interp.flow`);
* ``self_supervised`` -- SMORE-style: a small CNN trained on the scan's own in-plane axes degraded to
  the through-plane resolution (:mod:`ctlens.pipelines.interp.smore`), CPU, minutes;
* ``ldm`` -- the latent-diffusion model, given ``checkpoint=`` (:mod:`ctlens.pipelines.interp.ldm`).

Output grid: :mod:`ctlens.pipelines.interp.grid` (first output slice = first input slice, spacing
``spacing_z`` or ``input spacing / factor``, same origin and direction).

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> v = Volume(np.arange(3, dtype=np.int16)[:, None, None] * np.ones((3, 4, 4), np.int16) * 100,
    ...            spacing=(5.0, 0.8, 0.8), origin=(1.0, 2.0, 3.0))
    >>> out = interpolate(v, spacing_z=2.5, method="linear", progress=False)
    >>> out.shape, out.spacing, out.origin, out.array[:, 0, 0].tolist()
    ((5, 4, 4), (2.5, 0.8, 0.8), (1.0, 2.0, 3.0), [0, 50, 100, 150, 200])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ctlens.core.errors import InterpolationError
from ctlens.core.progress import ProgressCallback
from ctlens.core.volume import Volume
from ctlens.pipelines.interp.classic import CLASSIC_METHODS, interpolate_classic
from ctlens.pipelines.interp.grid import output_grid

__all__ = ["METHODS", "interpolate", "interpolate_array"]

METHODS = (*CLASSIC_METHODS, "flow", "self_supervised", "ldm")


def interpolate_array(
    array: np.ndarray,
    positions: np.ndarray,
    method: str = "cubic",
    *,
    factor: float | None = None,
    progress: bool | ProgressCallback = True,
    **options: Any,
) -> np.ndarray:
    """Interpolate ``array`` [z, y, x] at continuous slice indices ``positions`` (no geometry checks); float32.

    ``factor`` (output slices per input slice) is needed by ``self_supervised`` and ``ldm`` only.
    ``options`` go to the method: ``algorithm`` (flow: ``dis`` | ``farneback``); ``profile``,
    ``steps``, ``seed``, ``loss`` (self_supervised); ``checkpoint``, ``sampler``, ``sampling_steps`` (ldm).

    Example:
        >>> import numpy as np
        >>> interpolate_array(np.zeros((2, 3, 3)), np.array([0.0, 0.5, 1.0]), "nearest", progress=False).shape
        (3, 3, 3)
    """
    if method in CLASSIC_METHODS:
        return interpolate_classic(array, positions, method, progress=progress)
    if method == "flow":
        from ctlens.pipelines.interp.flow import interpolate_flow

        return interpolate_flow(array, positions, progress=progress, **options)
    if method == "self_supervised":
        from ctlens.pipelines.interp.smore import interpolate_smore

        return interpolate_smore(array, positions, factor=_need_factor(factor, positions), progress=progress, **options)
    if method == "ldm":
        from ctlens.pipelines.interp.ldm import interpolate_ldm

        return interpolate_ldm(array, positions, factor=_need_factor(factor, positions), progress=progress, **options)
    raise InterpolationError(f"unknown interpolation method {method!r}", hint=f"choose one of {', '.join(METHODS)}")


def _need_factor(factor: float | None, positions: np.ndarray) -> float:
    if factor is not None:
        return float(factor)
    step = float(np.diff(positions).min()) if len(positions) > 1 else 1.0
    return 1.0 / step


def interpolate(
    volume: Volume,
    spacing_z: float | None = None,
    factor: float | None = None,
    method: str = "cubic",
    *,
    progress: bool | ProgressCallback = True,
    name: str = "volume",
    **options: Any,
) -> Volume:
    """Thin slices from ``volume``: new slice spacing ``spacing_z`` mm, or ``factor`` times as many slices.

    Integer input (HU) comes back rounded in the same dtype; float input as float32. ``meta`` gains
    ``interpolation`` (method, factor, input spacing). Raises
    :class:`~ctlens.core.errors.InterpolationError` for non-axial or oblique input, a single slice,
    a factor < 1 or an unknown method.

    Example:
        >>> import numpy as np
        >>> from ctlens.core.volume import Volume
        >>> v = Volume(np.zeros((4, 8, 8), np.float32), spacing=(4.0, 1.0, 1.0))
        >>> out = interpolate(v, factor=4, method="cubic", progress=False)
        >>> out.shape, out.spacing[0], np.allclose(out.affine[:3, 3], v.affine[:3, 3])
        ((13, 8, 8), 1.0, True)
    """
    if method not in METHODS:
        raise InterpolationError(
            f"unknown interpolation method {method!r}", path=name, hint=f"choose one of {', '.join(METHODS)}"
        )
    grid = output_grid(volume, spacing_z=spacing_z, factor=factor, name=name)
    if method == "self_supervised":
        options.setdefault("spacing", volume.spacing)
    result = interpolate_array(volume.array, grid.positions, method, factor=grid.factor, progress=progress, **options)
    dtype = volume.array.dtype
    if dtype.kind in "iu":  # round back to the input's integer type, a slab at a time (no full-size temporaries)
        info = np.iinfo(dtype)
        rounded = np.empty(result.shape, dtype)
        for start in range(0, result.shape[0], 16):
            chunk = np.rint(result[start : start + 16])
            rounded[start : start + 16] = np.clip(chunk, info.min, info.max, out=chunk)
        result = rounded
    meta = dict(volume.meta)
    meta["interpolation"] = {"method": method, "factor": grid.factor, "input_spacing_z": volume.spacing[0]}
    return Volume(
        result,
        spacing=grid.spacing,
        origin=volume.origin,
        direction=volume.direction.copy(),
        modality=volume.modality,
        meta=meta,
    )
