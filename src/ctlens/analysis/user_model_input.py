"""What a user classifier is fed: the study fitted to the model's declared input shape (layout, size, intensity).

A model declares one input of rank 3 to 5 with a batch axis first; unknown sizes (``None`` in Keras, a name in
ONNX) take the study's own size (channels: 1). The layout is read from the shape:

* rank 4 ``(N, H, W, C)`` or ``(N, C, H, W)``: a 2-D image, the study's *key slice* (the slice of the first
  analysis candidate, else the middle slice; a 2-D upload is its own key slice). Channels last when the last axis
  is 1, 3 or 4 and the second is not; channels first when the second is and the last is not; otherwise Keras
  models are read channels last (Keras's default) and ONNX models channels first (PyTorch's export);
* rank 3 ``(N, H, W)``: the key slice without a channel axis;
* rank 5 ``(N, D, H, W, C)`` / ``(N, C, D, H, W)`` (same rule on the second / last axis): the whole volume.

Grey values are copied into every channel. Sizes are changed by linear interpolation (anti-aliased when
shrinking, :func:`skimage.transform.resize`). Intensities go to ``[0, 1]`` first: CT through a window (by
default the viewer's preset for the body region), 8-bit images by ``/ 255``, anything else (MR, 16-bit
images) by its 0.5th..99.5th percentile of nonzero values; ``input_range`` then maps ``[0, 1]`` to what the
model was trained on: ``"0-1"`` (default), ``"0-255"``, ``"-1-1"``, or ``"raw"`` (the stored values, e.g. HU).

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> vol = Volume(np.zeros((5, 40, 30), np.int16) + 40)
    >>> x, used = fit_input(vol, (None, 20, 20, 3), "keras", window="brain")
    >>> x.shape, x.dtype.name, round(float(x.max()), 2), used["layout"], used["slice_1based"]
    ((1, 20, 20, 3), 'float32', 0.5, 'NHWC', 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ctlens.core.errors import UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.preprocess.windows import apply_window, mr_normalize

__all__ = ["INPUT_RANGES", "fit_input", "input_layout", "to_unit"]

INPUT_RANGES = ("0-1", "0-255", "-1-1", "raw")
_CHANNELS = (1, 3, 4)


def _channels_last(first: Any, last: Any, kind: str) -> bool:
    first_ch, last_ch = first in _CHANNELS, last in _CHANNELS
    if last_ch != first_ch:
        return last_ch
    return kind == "keras"


def input_layout(shape: tuple[Any, ...], kind: str) -> str:
    """The layout of a declared input shape: ``NHWC``, ``NCHW``, ``NHW``, ``NDHWC`` or ``NCDHW``.

    ``kind`` (``keras`` / ``onnx``) settles the ambiguous cases. Other ranks raise ``UnsupportedFormatError``.

    Example:
        >>> input_layout((None, 224, 224, 3), "onnx"), input_layout((1, 3, 224, 224), "keras")
        ('NHWC', 'NCHW')
        >>> input_layout((None, None, None, None), "keras"), input_layout(("n", 1, 64, 64, 64), "onnx")
        ('NHWC', 'NCDHW')
    """
    rank = len(shape)
    if rank == 3:
        return "NHW"
    if rank == 4:
        return "NHWC" if _channels_last(shape[1], shape[3], kind) else "NCHW"
    if rank == 5:
        return "NDHWC" if _channels_last(shape[1], shape[4], kind) else "NCDHW"
    raise UnsupportedFormatError(
        f"an input of rank {rank} {list(shape)} is not supported",
        hint="user models take one image (N,H,W[,C] or N,C,H,W) or one volume (N,D,H,W,C or N,C,D,H,W)",
    )


def to_unit(array: np.ndarray, modality: str, window: str | tuple[float, float] | None) -> np.ndarray:
    """Intensities in ``[0, 1]`` (float32): CT windowed, 8-bit divided by 255, other data percentile-scaled.

    Example:
        >>> [round(float(v), 2) for v in to_unit(np.array([0, 51, 255], np.uint8), "OT", None)]
        [0.0, 0.2, 1.0]
        >>> to_unit(np.array([-160.0, 40.0, 240.0]), "CT", None).tolist()
        [0.0, 0.5, 1.0]
    """
    if modality == "CT":
        return apply_window(array, window or "soft_tissue")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    return mr_normalize(array)


def _scale(unit: np.ndarray, raw: np.ndarray, input_range: str) -> np.ndarray:
    if input_range == "0-1":
        return unit
    if input_range == "0-255":
        return unit * np.float32(255.0)
    if input_range == "-1-1":
        return unit * np.float32(2.0) - np.float32(1.0)
    if input_range == "raw":
        return raw.astype(np.float32)
    raise UnsupportedFormatError(f"unknown input_range {input_range!r}", hint=f"one of {', '.join(INPUT_RANGES)}")


def _resize(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if tuple(array.shape) == tuple(shape):
        return array
    from skimage.transform import resize

    shrinking = any(new < old for new, old in zip(shape, array.shape, strict=True))
    return resize(array, shape, order=1, preserve_range=True, anti_aliasing=shrinking).astype(np.float32)


def _size(declared: Any, native: int) -> int:
    return int(declared) if isinstance(declared, int | np.integer) and int(declared) > 0 else int(native)


def fit_input(
    volume: Volume,
    shape: tuple[Any, ...],
    kind: str,
    *,
    key_slice: int | None = None,
    window: str | tuple[float, float] | None = None,
    input_range: str = "0-1",
    dtype: Any = np.float32,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The array to feed a model with input ``shape`` (see the module docstring) and what was fed, for the record.

    ``key_slice`` is 0-based (default: the middle slice); ``window`` applies to CT only.
    """
    layout = input_layout(tuple(shape), kind)
    raw = np.asarray(volume.array)
    depth = raw.shape[0]
    used: dict[str, Any] = {"layout": layout, "range": input_range}
    if "D" in layout:
        data = raw
        used["source"] = f"whole volume ({depth} slice{'s' if depth > 1 else ''})"
    else:
        index = depth // 2 if key_slice is None else int(np.clip(key_slice, 0, depth - 1))
        data = raw[index]
        used["source"] = "the 2-D image" if depth == 1 else f"key slice {index + 1} of {depth}"
        used["slice_1based"] = index + 1
    if volume.modality == "CT" and input_range != "raw":
        used["window"] = window or "soft_tissue"
    fed = _scale(to_unit(data, volume.modality, window), data, input_range)
    dims = list(shape[1:])
    channel_axis = {"NHWC": 2, "NCHW": 0, "NDHWC": 3, "NCDHW": 0}.get(layout)
    channels = 1
    if channel_axis is not None:
        channels = _size(dims.pop(channel_axis), 1)
    target = tuple(_size(d, n) for d, n in zip(dims, fed.shape, strict=True))
    fed = _resize(fed, target)
    if channel_axis is not None:
        fed = np.repeat(np.expand_dims(fed, channel_axis), channels, axis=channel_axis)
    batch = _size(shape[0], 1)
    out = np.repeat(fed[None], batch, axis=0).astype(dtype, copy=False)
    used["shape"] = list(out.shape)
    return out, used
