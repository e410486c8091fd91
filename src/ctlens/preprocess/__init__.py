"""Preprocessing: orientation, resampling, windows, masks, crops / pads, tokenization and the 3D CLIP input.

Every step is a pure function on a :class:`~ctlens.core.volume.Volume` or a numpy array ``[z, y, x]``;
:func:`prepare_for_inference` chains them the way NeuroVFM does.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> from ctlens import preprocess as pp
    >>> v = Volume(np.full((8, 32, 32), -1000, np.int16), spacing=(4.0, 1.0, 1.0))
    >>> tokens, coords = pp.tokenize(pp.apply_window(v.array, "brain"))
    >>> tokens.shape, pp.detect_mode(v)[0]
    ((8, 1024), 'ct')
"""

from ctlens.preprocess.clip_input import to_clip_array
from ctlens.preprocess.crop_pad import crop_to_multiple, crop_widths, pad_to_multiple, pad_widths
from ctlens.preprocess.masks import (
    CT_THRESHOLD_HU,
    MR_THRESHOLD_FRACTION,
    foreground_mask,
    mr_threshold,
    token_background_flags,
)
from ctlens.preprocess.mode import detect_mode
from ctlens.preprocess.orientation import axcodes, permute_axes, reorient, slice_axis, slice_plane
from ctlens.preprocess.prepare import CT_CHANNELS, load_image, prepare_for_inference, to_model_grid
from ctlens.preprocess.resample import resample, resampled_grid
from ctlens.preprocess.tokens import grid_shape, tokenize, untokenize
from ctlens.preprocess.windows import WINDOWS, apply_window, mr_normalize, to_display_uint8, window_limits

__all__ = [
    "CT_CHANNELS",
    "CT_THRESHOLD_HU",
    "MR_THRESHOLD_FRACTION",
    "WINDOWS",
    "apply_window",
    "axcodes",
    "crop_to_multiple",
    "crop_widths",
    "detect_mode",
    "foreground_mask",
    "grid_shape",
    "load_image",
    "mr_normalize",
    "mr_threshold",
    "pad_to_multiple",
    "pad_widths",
    "permute_axes",
    "prepare_for_inference",
    "reorient",
    "resample",
    "resampled_grid",
    "slice_axis",
    "slice_plane",
    "to_clip_array",
    "to_model_grid",
    "token_background_flags",
    "to_display_uint8",
    "tokenize",
    "untokenize",
    "window_limits",
]
