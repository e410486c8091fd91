"""Entropy stages for one 2-D slice of unsigned 16-bit samples: JPEG-LS, HTJ2K, JPEG XL and blosc2 (zstd + bytedelta).

JPEG XL (libjxl, lossless modular mode) is told the slice's real bit depth (at least 9, the least libjxl takes for
16-bit input): that costs nothing and gives 0-5 % smaller streams than declaring 16 bits. A bit depth below the
largest value's would silently drop high bits, so it is derived from the data, never assumed. ``effort``
(1-9, libjxl's speed/size trade-off) is chosen by the caller; the decoder needs no parameter.

Each backend turns a ``uint16`` array ``[y, x]`` into bytes and back, bit-exactly (JPEG-LS also near-losslessly:
``near=e`` bounds every sample's error by ``e``, ISO/IEC 14495-1 NEAR parameter). Backends are identified in the
container by the one-byte ids of :data:`BACKEND_IDS`, which never change meaning.

Example:
    >>> import numpy as np
    >>> img = np.arange(64, dtype=np.uint16).reshape(8, 8)
    >>> all(np.array_equal(decode(name, encode(name, img), img.shape), img) for name in BACKEND_IDS)
    True
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ctlens.codec.j2k_header import check_codestream
from ctlens.core.errors import CTLensError
from ctlens.core.optional import require

__all__ = ["BACKEND_IDS", "BACKEND_NAMES", "decode", "decode_bytes", "encode", "encode_bytes", "jpegxl_bits"]

BACKEND_IDS: dict[str, int] = {"blosc2": 0, "jpegls": 1, "htj2k": 2, "jpegxl": 3}
"""Container id of each backend (stable: part of the .ctz format)."""
BACKEND_NAMES: dict[int, str] = {v: k for k, v in BACKEND_IDS.items()}


def _imagecodecs():  # type: ignore[no-untyped-def]
    return require("imagecodecs", extra="codec")


def _blosc2():  # type: ignore[no-untyped-def]
    return require("blosc2", extra="codec")


_local = threading.local()
_hook_lock = threading.Lock()
_previous_hook: Any = None
_previous_excepthook: Any = None


def _unraisable_hook(unraisable: Any) -> None:
    caught = getattr(_local, "caught", None)
    if caught is not None:  # an error the codec could not raise (OpenJPH reports through a callback)
        caught.append(unraisable.exc_value)
        return
    _previous_hook(unraisable)


def _excepthook(kind: Any, value: Any, tb: Any) -> None:
    caught = getattr(_local, "caught", None)
    if caught is not None:  # the same error, printed by the extension before it reports it as unraisable
        caught.append(value)
        return
    _previous_excepthook(kind, value, tb)


@contextlib.contextmanager
def _codec_errors(name: str) -> Iterator[None]:
    """Turn errors a codec reports as "Exception ignored in ..." (printed tracebacks) into one CTLensError."""
    global _previous_hook, _previous_excepthook
    with _hook_lock:
        if _previous_hook is None:
            _previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable_hook
            _previous_excepthook, sys.excepthook = sys.excepthook, _excepthook
    _local.caught = []
    try:
        yield
    finally:
        caught, _local.caught = _local.caught, None
    if caught:
        raise CTLensError(f"{name} stream is damaged ({type(caught[0]).__name__}: {caught[0]})")


def jpegxl_bits(image: np.ndarray) -> int:
    """Bit depth declared to libjxl for a ``uint16`` slice: the largest value's bit length, at least 9.

    Example:
        >>> import numpy as np
        >>> jpegxl_bits(np.array([[0, 3000]], np.uint16)), jpegxl_bits(np.zeros((2, 2), np.uint16))
        (12, 9)
    """
    return max(9, int(image.max(initial=0)).bit_length())


def encode(name: str, image: np.ndarray, *, near: int = 0, level: int = 5, effort: int = 7) -> bytes:
    """Encode a ``uint16`` slice with backend ``name``; ``near > 0`` (JPEG-LS only) allows that max error.

    ``level`` is blosc2's zstd level, ``effort`` JPEG XL's (1-9); the other backends ignore both.

    Example:
        >>> import numpy as np
        >>> len(encode("blosc2", np.zeros((16, 16), np.uint16))) < 100
        True
    """
    img = np.ascontiguousarray(image, dtype=np.uint16)
    if near and name != "jpegls":
        raise ValueError(f"near-lossless coding needs the jpegls backend, not {name!r}")
    if name == "jpegls":
        return bytes(_imagecodecs().jpegls_encode(img, level=int(near) if near else None))
    if name == "htj2k":
        return bytes(_imagecodecs().htj2k_encode(img, reversible=True))
    if name == "jpegxl":
        if not 1 <= int(effort) <= 9:
            raise ValueError(f"JPEG XL effort must be within 1..9, got {effort}")
        codec = _imagecodecs()
        with _codec_errors(name):
            return bytes(
                codec.jpegxl_encode(
                    img, lossless=True, effort=int(effort), bitspersample=jpegxl_bits(img), numthreads=1
                )
            )
    if name == "blosc2":
        blosc2 = _blosc2()
        return bytes(
            blosc2.compress2(
                img.tobytes(),
                typesize=2,
                clevel=int(level),
                codec=blosc2.Codec.ZSTD,
                filters=[blosc2.Filter.BYTEDELTA],
                filters_meta=[2],
            )
        )
    raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKEND_IDS)}")


JPEG_EOI = b"\xff\xd9"
"""The end-of-image marker that closes every JPEG-LS stream (ITU-T T.87 / ISO 14495-1, as in JPEG)."""


def decode(name: str, data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Decode bytes from :func:`encode` into a ``uint16`` array of ``shape``.

    Example:
        >>> import numpy as np
        >>> img = np.full((4, 5), 7, np.uint16)
        >>> decode("jpegls", encode("jpegls", img), (4, 5)).tolist() == img.tolist()
        True
    """
    # Every stream is decoded into (or checked against) a buffer of the expected size: a stream whose own header
    # declares another size is refused before the codec allocates anything for it.
    if name in ("jpegls", "htj2k", "jpegxl"):
        out = np.empty(shape, np.uint16)
        codec = _imagecodecs()
        if name == "htj2k":
            check_codestream(data, shape)  # OpenJPH trusts its header (a zero tile width kills the process)
        if name == "jpegls" and not bytes(data[-2:]) == JPEG_EOI:
            # every stream ctlens writes ends with EOI; without it a damaged scan can keep CharLS 2.4 busy for
            # seconds (17 of 527 damaged 12 x 9 streams without EOI took 0.2-6 s, none of 550 with EOI over 1 ms)
            raise CTLensError("jpegls stream does not end with its end-of-image marker (damaged or cut)")
        decoder = {"jpegls": codec.jpegls_decode, "htj2k": codec.htj2k_decode}.get(name)
        if decoder is None:  # one thread per slice: the series decoder runs slices in parallel already
            decoder = lambda d, out: codec.jpegxl_decode(d, numthreads=1, out=out)  # noqa: E731
        try:
            with _codec_errors(name):
                return np.asarray(decoder(data, out=out))
        except ValueError as exc:
            if "out.shape" in str(exc) or "out.dtype" in str(exc):
                raise CTLensError(f"{name} stream holds another image size or type than {shape} uint16") from None
            raise
    if name == "blosc2":
        expected = shape[0] * shape[1] * 2
        declared = int.from_bytes(data[4:8], "little") if len(data) >= 16 else -1
        if declared != expected:
            raise CTLensError(f"blosc2 stream declares {declared} bytes, expected {expected}")
        out = np.frombuffer(_blosc2().decompress2(data), dtype=np.uint16)
        if out.size != shape[0] * shape[1]:
            raise CTLensError(f"{name} stream decoded to {out.size} samples, expected {shape[0] * shape[1]}")
        return out.reshape(shape)
    raise ValueError(f"unknown backend {name!r}")


def encode_bytes(data: np.ndarray, *, level: int = 5) -> bytes:
    """zstd-compress a ``uint8`` array (used for the ROI correction layer).

    Example:
        >>> import numpy as np
        >>> decode_bytes(encode_bytes(np.arange(6, dtype=np.uint8)), (2, 3)).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    return bytes(_imagecodecs().zstd_encode(np.ascontiguousarray(data, dtype=np.uint8).tobytes(), level=int(level)))


def decode_bytes(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`encode_bytes`: a ``uint8`` array of ``shape``."""
    out = np.frombuffer(_imagecodecs().zstd_decode(data, out=shape[0] * shape[1]), dtype=np.uint8)
    if out.size != shape[0] * shape[1]:
        raise CTLensError(f"zstd stream decoded to {out.size} bytes, expected {shape[0] * shape[1]}")
    return out.reshape(shape)
