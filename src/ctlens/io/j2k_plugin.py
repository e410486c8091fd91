"""A pydicom 3 pixel-data decoder plugin for JPEG 2000 backed by imagecodecs (OpenJPEG).

pylibjpeg-openjpeg holds the GIL while decoding, so threads cannot decode
slices in parallel; imagecodecs releases it. :func:`register` adds this plugin
to pydicom's JPEG 2000 decoders under the label ``"ctlens-imagecodecs"``;
pydicom's own plugins stay available as the fallback.

:func:`decode_plane` decodes a codestream the reader has already cut out of the file
(``ctlens.io.dicom_parse.encapsulated_frame``) without pydicom reading the file again, where the
codestream's sample type is the one the header names (else it returns None and pydicom decodes,
with its sign corrections).

Example:
    >>> register()
    True
"""

from __future__ import annotations

import importlib.util

import numpy as np
from pydicom import uid
from pydicom.pixels.decoders import JPEG2000Decoder, JPEG2000LosslessDecoder
from pydicom.pixels.decoders.base import DecodeRunner

PLUGIN_LABEL = "ctlens-imagecodecs"
DECODER_DEPENDENCIES = {
    uid.JPEG2000Lossless: ("imagecodecs>=2023.1",),
    uid.JPEG2000: ("imagecodecs>=2023.1",),
}


def is_available(transfer_syntax: str) -> bool:
    """True when imagecodecs is installed and the syntax is JPEG 2000."""
    return transfer_syntax in DECODER_DEPENDENCIES and importlib.util.find_spec("imagecodecs") is not None


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """Decode one JPEG 2000 codestream into little-endian pixel bytes for pydicom."""
    import imagecodecs

    arr = imagecodecs.jpeg2k_decode(src, numthreads=1)
    if arr.ndim == 3:  # colour: imagecodecs gives the components interleaved, as pixel planar config 0
        runner.set_option("planar_configuration", 0)
    runner.set_option("bits_allocated", arr.dtype.itemsize * 8)
    if arr.dtype.kind == "i" and runner.pixel_representation == 0:
        runner.set_option("pixel_representation", 1)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def register() -> bool:
    """Add the plugin to pydicom's JPEG 2000 decoders once; False when imagecodecs is missing."""
    if importlib.util.find_spec("imagecodecs") is None:
        return False
    for decoder in (JPEG2000LosslessDecoder, JPEG2000Decoder):
        if PLUGIN_LABEL not in decoder.available_plugins and PLUGIN_LABEL not in getattr(decoder, "_unavailable", {}):
            decoder.add_plugin(PLUGIN_LABEL, ("ctlens.io.j2k_plugin", "_decode_frame"))
    return True


def decode_plane(
    codestream: bytes, rows: int, columns: int, signed: bool, bits_allocated: int, threads: int = 1
) -> np.ndarray | None:
    """One grayscale JPEG 2000 plane as stored values, or None where pydicom should decode it (module docstring).

    ``threads``: OpenJPEG's own threads for this one codestream (code-blocks and wavelet rows in parallel); 1 where
    the caller already decodes one slice per core.

    Example:
        >>> decode_plane(b"not a codestream", 2, 2, False, 16) is None
        True
    """
    try:
        import imagecodecs

        arr = imagecodecs.jpeg2k_decode(codestream, numthreads=threads)  # releases the GIL
    except BaseException as exc:  # noqa: BLE001 - any decoder failure (a panic too): pydicom decodes, reports by file
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        return None
    if arr.shape != (rows, columns) or arr.dtype.itemsize * 8 != bits_allocated or (arr.dtype.kind == "i") != signed:
        return None
    return arr
