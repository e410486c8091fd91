"""Entropy stages for one 2-D slice of unsigned 16-bit samples: JPEG-LS, HTJ2K and blosc2 (zstd + bytedelta).

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

import numpy as np

from ctlens.core.errors import CTLensError
from ctlens.core.optional import require

__all__ = ["BACKEND_IDS", "BACKEND_NAMES", "decode", "decode_bytes", "encode", "encode_bytes"]

BACKEND_IDS: dict[str, int] = {"blosc2": 0, "jpegls": 1, "htj2k": 2}
"""Container id of each backend (stable: part of the .ctz format)."""
BACKEND_NAMES: dict[int, str] = {v: k for k, v in BACKEND_IDS.items()}


def _imagecodecs():  # type: ignore[no-untyped-def]
    return require("imagecodecs", extra="codec")


def _blosc2():  # type: ignore[no-untyped-def]
    return require("blosc2", extra="codec")


def encode(name: str, image: np.ndarray, *, near: int = 0, level: int = 5) -> bytes:
    """Encode a ``uint16`` slice with backend ``name``; ``near > 0`` (JPEG-LS only) allows that max error.

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


def decode(name: str, data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Decode bytes from :func:`encode` into a ``uint16`` array of ``shape``.

    Example:
        >>> import numpy as np
        >>> img = np.full((4, 5), 7, np.uint16)
        >>> decode("jpegls", encode("jpegls", img), (4, 5)).tolist() == img.tolist()
        True
    """
    if name == "jpegls":
        out = _imagecodecs().jpegls_decode(data)
    elif name == "htj2k":
        out = _imagecodecs().htj2k_decode(data)
    elif name == "blosc2":
        out = np.frombuffer(_blosc2().decompress2(data), dtype=np.uint16)
    else:
        raise ValueError(f"unknown backend {name!r}")
    out = np.asarray(out)
    if out.size != shape[0] * shape[1]:
        raise CTLensError(f"{name} stream decoded to {out.size} samples, expected {shape[0] * shape[1]}")
    return out.reshape(shape).astype(np.uint16, copy=False)


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
    out = np.frombuffer(_imagecodecs().zstd_decode(data), dtype=np.uint8)
    if out.size != shape[0] * shape[1]:
        raise CTLensError(f"zstd stream decoded to {out.size} bytes, expected {shape[0] * shape[1]}")
    return out.reshape(shape)
