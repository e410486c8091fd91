"""ROI detection and the lossless / ROI-lossless series container (`.ctz`).

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from ctlens.codec import encode_volume, decode_volume
    >>> vol = np.full((2, 32, 32), -1000, np.int16)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.ctz"
    >>> _ = encode_volume(vol, path)
    >>> np.array_equal(decode_volume(path).array, vol)
    True
"""

from ctlens.codec.roi import detect_roi, roi_score
from ctlens.codec.series import (
    PROFILES,
    CodecStats,
    decode_slice,
    decode_volume,
    encode_slices,
    encode_volume,
    export_json,
    import_json,
    read_info,
)

__all__ = [
    "PROFILES",
    "CodecStats",
    "decode_slice",
    "decode_volume",
    "detect_roi",
    "encode_slices",
    "encode_volume",
    "export_json",
    "import_json",
    "read_info",
    "roi_score",
]
