"""Checks of an HTJ2K slice stream's main header before OpenJPH decodes it (issue #21).

OpenJPH trusts the codestream's main header: a tile width of 0 in the SIZ marker divides by zero (the process dies
of SIGFPE, found by fuzzing ``.ctz`` files). :func:`check_codestream` reads the SIZ marker itself
(ISO/IEC 15444-1, A.5.1), the coding style and quantization markers (A.6.1-A.6.5) of the main and every
tile-part header, and refuses, with a :class:`~ctlens.core.errors.CTLensError`, any value outside
the standard's range or any image other than the one the container expects: one component of at most 16 bits and
exactly the slice's size.

Example:
    >>> import numpy as np
    >>> from ctlens.codec.backends import encode
    >>> data = encode("htj2k", np.zeros((4, 5), np.uint16))
    >>> check_codestream(data, (4, 5))
    >>> bad = data[:24] + bytes(4) + data[28:]  # XTsiz = 0
    >>> check_codestream(bad, (4, 5))
    Traceback (most recent call last):
    ...
    ctlens.core.errors.CTLensError: htj2k stream is damaged: tile size 0 x 4 in its SIZ marker
"""

from __future__ import annotations

import struct

from ctlens.core.errors import CTLensError

__all__ = ["check_codestream"]

_SOC, _SIZ, _COD, _COC = b"\xff\x4f", b"\xff\x51", b"\xff\x52", b"\xff\x53"
_QCD, _QCC = b"\xff\x5c", b"\xff\x5d"
_SIZ_FIELDS = struct.Struct(">HHIIIIIIIIH")  # Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz
_MAX_TILES = 65535  # Isot, the tile index, is 16 bits
_MAX_LEVELS = 32  # SPcod decomposition levels
_SOT, _SOD = b"\xff\x90", b"\xff\x93"


def _damaged(reason: str) -> CTLensError:
    return CTLensError(f"htj2k stream is damaged: {reason}")


def _check_siz(data: bytes, shape: tuple[int, int]) -> int:
    """The SIZ marker right after SOC: one component, at most 16 bits, the slice's size, sane tiles. Its end."""
    if len(data) < 4 + _SIZ_FIELDS.size + 3 or data[:2] != _SOC or data[2:4] != _SIZ:
        raise _damaged("no SOC and SIZ markers at its start")
    lsiz, _, xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz = _SIZ_FIELDS.unpack_from(data, 4)
    if csiz != 1 or lsiz != 38 + 3 * csiz:
        raise _damaged(f"{csiz} components (length {lsiz}) in its SIZ marker, not one")
    if (ysiz - yo, xsiz - xo) != tuple(shape) or xo >= xsiz or yo >= ysiz:
        raise _damaged(f"image {xsiz - xo} x {ysiz - yo} in its SIZ marker, not the slice's {shape[1]} x {shape[0]}")
    if xt < 1 or yt < 1 or xto > xo or yto > yo or xto + xt <= xo or yto + yt <= yo:
        raise _damaged(f"tile size {xt} x {yt} in its SIZ marker")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    if tiles > _MAX_TILES:
        raise _damaged(f"{tiles} tiles in its SIZ marker, more than {_MAX_TILES}")
    ssiz, xr, yr = data[4 + _SIZ_FIELDS.size : 4 + _SIZ_FIELDS.size + 3]
    if (ssiz & 0x7F) + 1 > 16 or xr < 1 or yr < 1:
        raise _damaged(f"component precision {(ssiz & 0x7F) + 1} or sub-sampling {xr} x {yr} in its SIZ marker")
    return 2 + 2 + lsiz


def _segments(data: bytes, start: int, stop: int) -> list[tuple[bytes, int, int]]:
    """``(marker, offset, length)`` of each marker segment from ``start`` up to SOD / SOT (or ``stop``)."""
    out, pos = [], start
    while pos + 4 <= stop and data[pos : pos + 2] not in (_SOT, _SOD):
        if data[pos] != 0xFF:
            raise _damaged(f"no marker at byte {pos} of its header")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > stop:
            raise _damaged(f"marker 0x{data[pos + 1]:02X} of length {length} runs past its header")
        out.append((data[pos : pos + 2], pos, length))
        pos += 2 + length
    return out


def _check_coding(data: bytes, segments: list[tuple[bytes, int, int]], levels: int) -> int:
    """COD / COC (levels, code-blocks, reversible) and QCD / QCC (one value a sub-band, no quantization) markers.

    ctlens writes reversible streams only (lossless 5/3 wavelet, no quantization); OpenJPH reads past a
    quantization marker shorter than the sub-bands need and crashes on an irreversible transform without
    quantization steps, so anything else is refused. Returns the decomposition levels in force.
    """
    for marker, pos, length in segments:
        if marker in (_COD, _COC):
            first = pos + (
                9 if marker == _COD else 6
            )  # SPcod / SPcoc: levels, code-block width, height, style, wavelet
            if pos + 2 + length < first + 5:
                raise _damaged(f"coding style marker of length {length}")
            levels, xcb, ycb, _, wavelet = data[first : first + 5]
            if levels > _MAX_LEVELS or xcb > 8 or ycb > 8 or xcb + ycb > 8 or wavelet != 1:
                raise _damaged(
                    f"{levels} decomposition levels, code-block size 2^{xcb + 2} x 2^{ycb + 2} or wavelet {wavelet} "
                    "(not the reversible 5/3)"
                )
    for marker, pos, length in segments:
        if marker in (_QCD, _QCC):
            style = data[pos + (4 if marker == _QCD else 5)] & 0x1F
            values = length - (3 if marker == _QCD else 4)
            if style != 0 or values != 3 * levels + 1:
                raise _damaged(f"quantization style {style} with {values} values for {3 * levels + 1} sub-bands")
    return levels


def _check_tiles(data: bytes, pos: int, levels: int) -> None:
    """Each tile-part's own header (``SOT`` ... ``SOD``), found through the tile-part lengths."""
    while pos + 12 <= len(data) and data[pos : pos + 2] == _SOT:
        psot = int.from_bytes(data[pos + 6 : pos + 10], "big")
        stop = len(data) if psot == 0 else pos + psot
        if psot and (psot < 14 or stop > len(data)):
            raise _damaged(f"tile-part length {psot} at byte {pos}")
        segments = _segments(data, pos + 12, stop)
        tile_levels = max([data[p + 9] for m, p, _ in segments if m == _COD] or [levels])
        _check_coding(data, segments, tile_levels)
        if psot == 0:
            return
        pos = stop


def check_codestream(data: bytes, shape: tuple[int, int]) -> None:
    """Refuse an HTJ2K codestream whose headers OpenJPH could not decode safely into a ``shape`` slice."""
    start = _check_siz(data, shape)
    segments = _segments(data, start, len(data))
    if not any(marker == _COD for marker, _, _ in segments) or not any(marker == _QCD for marker, _, _ in segments):
        raise _damaged("no COD or QCD marker in its main header")
    levels = next(data[pos + 9] for marker, pos, _ in segments if marker == _COD)
    _check_coding(data, segments, levels)
    end = segments[-1][1] + 2 + segments[-1][2]
    _check_tiles(data, end, levels)
