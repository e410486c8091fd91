"""Reading 2-D image files (PNG, JPEG, BMP, TIFF) into one-slice volumes, with Pillow.

Images have no patient geometry: the volume has shape ``(1, H, W)``, spacing ``(1, 1, 1)``, origin 0, the
default axial direction and modality ``"OT"`` (DICOM's "other").

Colour is reduced to one grey channel with the ITU-R BT.601 luma formula
``Y = 0.299 R + 0.587 G + 0.114 B`` (the one Pillow's ``convert("L")`` uses), rounded to the nearest integer;
an alpha channel is dropped (not blended). Grayscale images keep their values and dtype: 8-bit as uint8,
16-bit (PNG / TIFF) as uint16, 32-bit integer as int32, float TIFF as float32; TIFF samples Pillow gets wrong
(signed 8-bit, 32-bit unsigned, signed and float samples of big-endian compressed files) are read with tifffile,
signed 8-bit as int8 and 32-bit unsigned as uint32; a 16-bit grey + alpha PNG keeps its 16 bits (imagecodecs).

Damaged files: Pillow's format plugins raise whatever their code meets on malformed data (``TypeError`` for a
TIFF page without ImageWidth, ``KeyError`` for an unknown TIFF compression, ``struct.error``, ``IndexError``...),
so every exception Pillow raises while opening or decoding a file is that file's
:class:`~ctlens.core.errors.CorruptFileError`. Work is bounded by the file's size where Pillow's is not: the
pages of a TIFF are counted only up to 65, and RLE BMP pixels are decoded by :mod:`ctlens.io.bmp_rle`.

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

from ctlens.core.errors import CorruptFileError, CTLensError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io.bmp_rle import decode_bmp_rle
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
_PAGES_COUNTED = 64
"""Pages of a TIFF counted before it is called "over 64 pages" (only single images are read)."""
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I": 4, "F": 4, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


_ROW_POINTER = 8
"""Bytes Pillow keeps per row of every image besides its pixels (a pointer to the row: ``im->image[y]``)."""


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes Pillow holds for a ``mode`` image of ``width`` x ``height`` (4 per pixel for modes not listed), its
    row pointers included (they dominate tall narrow images: 2 x 16777224 pixels of mode "1" hold 134 MB of
    pointers for 34 MB of pixels).

    Example:
        >>> decoded_bytes("RGB", 10, 2), decoded_bytes("I;16", 10, 2), decoded_bytes("CMYK", 10, 2)
        (76, 56, 96)
    """
    per_pixel = 2 if mode in _SIXTEEN_BIT else _MODE_BYTES.get(mode, 4)
    return int(height) * (int(width) * per_pixel + _ROW_POINTER)


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


def _pages(opened: Image.Image) -> int:
    """Pages (frames) of an opened image: 1 for a single image; a TIFF's are counted up to one past
    :data:`_PAGES_COUNTED` (Pillow parses each page's directory to find the next one: 0.9 ms a page, so counting
    all 100000 pages of an 11 MB file took 90 s)."""
    if not getattr(opened, "is_animated", False):
        return 1
    if opened.format != "TIFF":
        return int(getattr(opened, "n_frames", 1) or 1)  # declared in one header field (APNG acTL, MPO index)
    count = 1
    try:
        while count <= _PAGES_COUNTED:
            opened.seek(count)
            count += 1
    except EOFError:
        pass
    opened.seek(0)
    return count


_EXIF_TURNS = {2: (False, 0, True), 3: (False, 2, False), 4: (False, 2, True), 5: (True, 0, False)}
_EXIF_TURNS |= {6: (False, -1, False), 7: (True, 2, False), 8: (False, 1, False)}
"""EXIF / TIFF orientation -> (transpose, quarter turns counter-clockwise, then flip left-right): what
:func:`PIL.ImageOps.exif_transpose` does, on a numpy array."""


def _tiff_samples(path: Path, opened: Image.Image) -> np.ndarray | None:
    """The pixels of a one-sample TIFF whose samples Pillow decodes wrongly, decoded by tifffile; else None.

    Pillow reads signed 8-bit samples as unsigned, 32-bit unsigned ones as signed, and swaps the bytes of signed and
    float samples of big-endian files twice when libtiff decompresses them (-5000 came back as 30956). tifffile
    follows SampleFormat and byte order for every compression. Pillow also scrambles uncompressed TIFFs whose
    orientation turns them by 90 degrees (5-8): it fills the turned raster with the stored rows. Those (grey) come
    from tifffile too, and the orientation is applied here as Pillow applies it to compressed ones.
    """
    tags = opened.tag_v2  # type: ignore[attr-defined]

    def first(tag: int, default: int) -> int:
        value = tags.get(tag, default)
        return int(value[0] if isinstance(value, tuple) else value)

    if first(277, 1) != 1 or first(262, 1) != 1 or first(258, 1) not in (8, 16, 32):  # grey, 0 = black
        return None
    wrong_samples = first(339, 1) != 1 or first(258, 1) == 32
    turned_raw = first(274, 1) in (5, 6, 7, 8) and first(259, 1) == 1
    if not (wrong_samples or turned_raw):
        return None
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        if len(page.shape) != 2 or page.dtype is None or page.dtype.itemsize > 4:
            raise ValueError(f"unexpected TIFF layout {page.shape} {page.dtype}")
        array = page.asarray()
    return _orient(array, first(274, 1))


def _orient(array: np.ndarray, orientation: int | None) -> np.ndarray:
    """``array`` (stored rows) as EXIF ``orientation`` says it is shown, in native byte order."""
    transpose, turns, flip = _EXIF_TURNS.get(orientation or 1, (False, 0, False))
    array = np.rot90(array.T if transpose else array, turns)
    array = array[:, ::-1] if flip else array
    return array.astype(array.dtype.newbyteorder("="), copy=False)  # big-endian files: native order


def _png_grey_alpha16(path: Path, opened: Image.Image) -> np.ndarray | None:
    """The grey channel of a 16-bit grey + alpha PNG (colour type 4), as uint16; None for any other PNG.

    Pillow opens those as 8-bit RGBA (it has no 16-bit LA mode): the low 8 bits of every sample were lost.
    They are decoded with imagecodecs' libpng instead; the eXIf orientation is applied as for other images.
    """
    with path.open("rb") as fh:
        header = fh.read(26)
    if len(header) < 26 or header[12:16] != b"IHDR" or header[24] != 16 or header[25] != 4:
        return None
    import imagecodecs

    array = np.asarray(imagecodecs.png_decode(path.read_bytes()))
    if array.shape != (opened.size[1], opened.size[0], 2) or array.dtype != np.uint16:
        raise ValueError(f"unexpected PNG layout {array.shape} {array.dtype}")
    return _orient(array[:, :, 0], _orientation(opened))


def _orientation(opened: Image.Image) -> int | None:
    """The EXIF / TIFF orientation of an opened image (1, or None where it has none, is as stored)."""
    return opened.getexif().get(ExifTags.Base.Orientation, 1)


def _samples_pillow_gets_wrong(path: Path, opened: Image.Image) -> np.ndarray | None:
    """Grey samples of a TIFF or PNG that Pillow would decode wrongly, decoded by tifffile / libpng and oriented;
    None for every other image (Pillow decodes it)."""
    if opened.format == "TIFF":
        return _tiff_samples(path, opened)
    if opened.format == "PNG":
        return _png_grey_alpha16(path, opened)
    return None


def _load_bmp_rle(path: Path, opened: Image.Image) -> Image.Image:
    """The pixels of an RLE8 / RLE4 BMP that Pillow has opened (header, palette), decoded by
    :func:`ctlens.io.bmp_rle.decode_bmp_rle` instead of Pillow's pixel-at-a-time Python decoder."""
    _, _, offset, args = opened.tile[0]
    width, height = opened.size
    indices = decode_bmp_rle(path.read_bytes(), int(offset), width, height, four=bool(args[1]))
    if indices.size < width * height:
        raise CorruptFileError(
            f"truncated image: the run-length data ends after {indices.size} of the {width}x{height} pixels",
            path=path,
            hint="re-export or re-download the image",
        )
    rawmode = "L" if opened.mode in ("1", "L") else "P"  # what Pillow's own BMP RLE decoder hands on
    image = Image.frombytes(opened.mode, opened.size, indices.tobytes(), "raw", rawmode, 0, args[-1])
    if opened.mode == "P" and opened.palette is not None:
        image.palette = opened.palette.copy()
        image.load()  # applies the palette
    return image


def _reason(exc: Exception, fmt: str) -> str:
    """One line saying why Pillow could not decode the file (its own words for the errors it means to raise)."""
    text = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
    if isinstance(exc, MemoryError):
        return "not enough memory to decode it"
    if not isinstance(exc, OSError | SyntaxError | ValueError | EOFError):  # Pillow did not expect the damage
        return f"malformed {fmt} structure ({type(exc).__name__}{': ' + text if text else ''})"
    if "truncated" in text.lower():
        return "truncated image (the data ends early)"
    return text or type(exc).__name__


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
            warnings.simplefilter("ignore", UserWarning)  # Pillow on damaged metadata it skips (dropped anyway)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=sorted(set(IMAGE2D_SUFFIXES.values()))) as opened:
                width, height = opened.size
                if limit is not None and width * height > limit:
                    raise Image.DecompressionBombError(f"{width * height} pixels")
                _check_expansion(path, opened.mode, width, height)
                if opened.format == "PNG":
                    _check_png_rows(path)
                frames = _pages(opened)
                if frames > 1:
                    many = f"over {_PAGES_COUNTED}" if frames > _PAGES_COUNTED else str(frames)
                    raise UnsupportedFormatError(
                        f"multi-page image ({many} pages); only single 2-D images are read",
                        path=path,
                        hint="split the pages into separate files or store the stack as NIfTI/NRRD",
                    )
                source_format = (opened.format or fmt).lower()
                source_mode = opened.mode
                samples = _samples_pillow_gets_wrong(path, opened)  # orientation applied already
                if samples is not None:
                    array, converted_from = (samples.astype(np.int32) if samples.dtype == np.int16 else samples), None
                    transposed = _orientation(opened) not in (None, 1)
                else:
                    if opened.tile and opened.tile[0][0] == "bmp_rle":
                        image = _load_bmp_rle(path, opened)  # BMP has no EXIF
                    else:
                        opened.load()
                        turned = _orientation(opened) not in (None, 1)
                        image = (ImageOps.exif_transpose(opened) or opened) if turned else opened
                    array, converted_from = to_grayscale(image, source_format=opened.format)
                    transposed = image is not opened and opened.format != "BMP"
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
    except CTLensError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise any type on malformed data (module doc)
        raise CorruptFileError(f"cannot decode image: {_reason(exc, fmt)}", path=path, hint=hint) from None

    meta: dict[str, Any] = {"source_format": source_format, "mode": source_mode}
    if converted_from is not None:
        meta["grayscale_from"] = converted_from
    if transposed:
        meta["exif_transposed"] = True
    return Volume(np.ascontiguousarray(array[None]), spacing=(1.0, 1.0, 1.0), modality="OT", meta=meta)
