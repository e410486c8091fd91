"""Reading 2-D image files (PNG, JPEG, BMP, TIFF) into one-slice volumes, with Pillow.

Images have no patient geometry: the volume has shape ``(1, H, W)``, spacing ``(1, 1, 1)``, origin 0, the
default axial direction and modality ``"OT"`` (DICOM's "other").

Colour is reduced to one grey channel with the ITU-R BT.601 luma formula
``Y = 0.299 R + 0.587 G + 0.114 B`` (the one Pillow's ``convert("L")`` uses), rounded to the nearest integer;
an alpha channel is dropped (not blended). Grayscale images keep their values and dtype: 8-bit as uint8,
16-bit (PNG / TIFF) as uint16, 32-bit integer as int32, float TIFF as float32.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "xray.png"
    >>> Image.fromarray(np.full((4, 5), 200, np.uint8)).save(path)
    >>> read_image2d(path)
    Volume(shape=(1, 4, 5), dtype=uint8, spacing=(1, 1, 1) mm, modality='OT')
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ctlens.core.errors import CorruptFileError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io.files import check_readable
from ctlens.io.suffixes import IMAGE2D_SUFFIXES

__all__ = ["LUMA_WEIGHTS", "SMALL_IMAGE_BYTES", "decoded_bytes", "read_image2d", "to_grayscale"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights for R, G, B."""

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
SMALL_IMAGE_BYTES = 64 * 1024**2
"""Decoded size any image may have whatever its file size (a 16-bit 4096 x 4096 X-ray is 32 MiB)."""
_LUMA_PIXELS = 1 << 20  # about this many pixels are converted to grey at a time: the copies stay small
# (a fixed number of rows is not enough: 256 rows of a 52264-pixel-wide CMYK JPEG made 350 MB of copies)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I": 4, "F": 4, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes Pillow holds for a ``mode`` image of ``width`` x ``height`` (4 per pixel for modes not listed).

    Example:
        >>> decoded_bytes("RGB", 10, 2), decoded_bytes("I;16", 10, 2), decoded_bytes("CMYK", 10, 2)
        (60, 40, 80)
    """
    per_pixel = 2 if mode in _SIXTEEN_BIT else _MODE_BYTES.get(mode, 4)
    return int(width) * int(height) * per_pixel


def _max_ratio() -> float:
    from ctlens.core.settings import get_settings

    return float(get_settings().max_archive_ratio)


def to_grayscale(image: Image.Image, *, source_format: str | None = None) -> tuple[np.ndarray, str | None]:
    """One grey channel of a loaded Pillow image and the colour mode it was converted from (None if grey).

    ``source_format`` (default ``image.format``) matters only for 32-bit ``"I"`` images: from a PNG they
    are 16-bit data and become uint16.

    Example:
        >>> from PIL import Image
        >>> arr, source = to_grayscale(Image.new("RGBA", (2, 1), (255, 0, 0, 7)))
        >>> arr.tolist(), source
        ([[76, 76]], 'RGBA')
    """
    mode = image.mode
    if mode == "L":
        return np.asarray(image), None
    if mode in _SIXTEEN_BIT:
        return np.asarray(image).astype(np.uint16), None
    if mode == "I":
        arr = np.asarray(image)
        if (source_format or image.format) == "PNG" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16), None  # older Pillow opens 16-bit PNG as 32-bit "I"
        return arr.astype(np.int32), None
    if mode == "F":
        return np.asarray(image).astype(np.float32), None
    if mode == "1":
        return np.asarray(image.convert("L")), None
    if mode == "LA":
        return np.asarray(image.getchannel("L")), mode
    weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    rows = max(1, _LUMA_PIXELS // max(width, 1))
    for top in range(0, height, rows):  # in bands of rows: no RGB or float copy of the whole image
        band = image.crop((0, top, width, min(height, top + rows)))
        rgb = band if mode in ("RGB", "RGBA", "RGBX") else band.convert("RGBA" if "A" in mode else "RGB")
        luma = np.asarray(rgb)[:, :, :3].astype(np.float32) @ weights
        out[top : top + rows] = np.clip(np.rint(luma), 0, 255)
    return out, mode


def _check_expansion(path: Path, mode: str, width: int, height: int) -> None:
    """Refuse an image whose header declares far more pixels than its file could hold (decompression bomb).

    The limit is ``CTLENS_MAX_ARCHIVE_RATIO`` (the decompressed/compressed ratio of every compressed input) times
    the file size, and never less than :data:`SMALL_IMAGE_BYTES`.
    """
    size = path.stat().st_size
    declared = decoded_bytes(mode, width, height)
    limit = max(SMALL_IMAGE_BYTES, int(_max_ratio() * size))
    if declared > limit:
        raise CorruptFileError(
            f"image header declares {width}x{height} {mode} ({declared} bytes decoded) from a {size}-byte file: "
            f"over {limit} bytes (possible decompression bomb)",
            path=path,
            hint="set CTLENS_MAX_ARCHIVE_RATIO if this image is trusted",
        )


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_data_bytes(width: int, height: int, depth: int, colour: int, interlaced: bool) -> int | None:
    """Bytes of filtered scanlines a PNG's IDAT must inflate to (PNG spec 7.2, 8.2); None for an invalid IHDR.

    Example:
        >>> png_data_bytes(3, 2, 8, 2, False), png_data_bytes(1, 1, 16, 0, True)
        (20, 3)
    """
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        return None
    bits = depth * channels
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        cols, rows = max(0, -(-(width - x0) // dx)), max(0, -(-(height - y0) // dy))
        if cols and rows:
            total += rows * (1 + -(-cols * bits // 8))
    return total


def _check_png_rows(path: Path) -> None:
    """Refuse a PNG whose image data ends before its last row (Pillow would fill the missing rows with zeros)."""
    data = path.read_bytes()
    if data[12:16] != b"IHDR" or len(data) < 33:
        return  # Pillow reports it
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    expected = png_data_bytes(width, height, depth, colour, interlace == 1)
    if expected is None:
        return
    inflater, got, pos = zlib.decompressobj(), 0, 8
    try:
        while pos + 8 <= len(data) and got < expected:
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if kind == b"IDAT":
                chunk = data[pos + 8 : pos + 8 + length]
                while chunk and got < expected:
                    got += len(inflater.decompress(chunk, 1 << 20))
                    chunk = inflater.unconsumed_tail
            pos += 12 + length
    except zlib.error:
        return  # Pillow reports the damaged stream in its own words
    if got < expected:
        raise CorruptFileError(
            f"truncated image: the data holds {got} of the {expected} bytes its {width}x{height} header declares",
            path=path,
            hint="re-export or re-download the image",
        )


def read_image2d(path: str | Path) -> Volume:
    """Read a PNG / JPEG / BMP / TIFF image as a one-slice grey :class:`Volume` of shape ``(1, H, W)``.

    EXIF orientation (cameras, phones) is applied. ``meta`` holds ``source_format`` (``'png'``, ``'jpeg'``,
    ``'bmp'``, ``'tiff'``), the original Pillow ``mode`` and, for colour images, ``grayscale_from``; text
    chunks and EXIF fields (which may identify people) are dropped. Multi-page TIFFs are refused
    (:class:`~ctlens.core.errors.UnsupportedFormatError`); truncated or undecodable images and images over
    Pillow's ``Image.MAX_IMAGE_PIXELS`` (decompression bombs) raise :class:`~ctlens.core.errors.CorruptFileError`.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> from PIL import Image
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "photo.jpg"
        >>> Image.new("RGB", (3, 2), (0, 0, 255)).save(path, quality=100)
        >>> v = read_image2d(path)
        >>> v.shape, v.array.dtype, int(v.array.mean()), v.meta["source_format"], v.meta["grayscale_from"]
        ((1, 2, 3), dtype('uint8'), 29, 'jpeg', 'RGB')
    """
    path = Path(path)
    fmt = IMAGE2D_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(
            f"not a 2-D image file name (expected one of {', '.join(IMAGE2D_SUFFIXES)})",
            path=path,
            hint="rename the file or use the reader for its format",
        )
    check_readable(path, fmt)
    hint = "re-export or re-download the image"
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=sorted(set(IMAGE2D_SUFFIXES.values()))) as opened:
                width, height = opened.size
                if limit is not None and width * height > limit:
                    raise Image.DecompressionBombError(f"{width * height} pixels")
                _check_expansion(path, opened.mode, width, height)
                if opened.format == "PNG":
                    _check_png_rows(path)
                frames = int(getattr(opened, "n_frames", 1) or 1)
                if frames > 1:
                    raise UnsupportedFormatError(
                        f"multi-page image ({frames} pages); only single 2-D images are read",
                        path=path,
                        hint="split the pages into separate files or store the stack as NIfTI/NRRD",
                    )
                opened.load()
                source_format = (opened.format or fmt).lower()
                source_mode = opened.mode
                orientation = opened.getexif().get(ExifTags.Base.Orientation, 1)
                image = opened if orientation in (None, 1) else (ImageOps.exif_transpose(opened) or opened)
                array, converted_from = to_grayscale(image, source_format=opened.format)
    except UnidentifiedImageError:
        raise CorruptFileError(
            f"not a readable {'/'.join(sorted(set(IMAGE2D_SUFFIXES.values())))} image", path=path, hint=hint
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CorruptFileError(
            f"image too large: more than Pillow's limit of {limit} pixels (possible decompression bomb)",
            path=path,
            hint="if the image is trusted, raise PIL.Image.MAX_IMAGE_PIXELS",
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in reason.lower():
            reason = "truncated image (the data ends early)"
        raise CorruptFileError(f"cannot decode image: {reason}", path=path, hint=hint) from None

    meta: dict[str, Any] = {"source_format": source_format, "mode": source_mode}
    if converted_from is not None:
        meta["grayscale_from"] = converted_from
    if image is not opened:
        meta["exif_transposed"] = True
    return Volume(np.ascontiguousarray(array[None]), spacing=(1.0, 1.0, 1.0), modality="OT", meta=meta)
