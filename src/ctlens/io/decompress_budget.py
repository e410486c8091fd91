"""Decompression budgets: how many bytes a compressed input may expand to, checked before or while it expands.

A :class:`Budget` caps the decompressed size and the expansion ratio (decompressed / compressed bytes). Streams
(gzip, bzip2, xz) are measured by decompressing them in 1 MiB pieces, counting, and stopping at the first byte
over the budget (:func:`stream_size`: nothing is written, memory stays at one piece). Image headers that declare
their voxel bytes (NRRD, MetaImage) are checked from the declaration against the bytes that hold the voxels
(:func:`check_declared`), before a reader allocates anything. Zip archives use the same budget
(:mod:`ctlens.io.archive`).

Real CT compresses 2-5x; the default ratio limit is 100x (``CTLENS_MAX_ARCHIVE_RATIO``).

Example:
    >>> import gzip, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "zeros.gz"
    >>> _ = path.write_bytes(gzip.compress(bytes(10_000_000)))
    >>> stream_size(path, Budget(max_bytes=1 << 30, max_ratio=100))
    Traceback (most recent call last):
    ...
    ctlens.io.decompress_budget.BudgetExceeded: zeros.gz: expands beyond 100x its ... compressed bytes ...
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from dataclasses import dataclass
from pathlib import Path

from ctlens.core.errors import CorruptFileError, UnsafeArchiveError

__all__ = ["Budget", "BudgetExceeded", "check_declared", "compression_of", "stream_size"]

PIECE = 1 << 20
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_OPEN = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}


class BudgetExceeded(UnsafeArchiveError):
    """A compressed input that would expand beyond its budget (a decompression bomb, or simply too big)."""


@dataclass(frozen=True)
class Budget:
    """Most decompressed bytes and the largest decompressed/compressed ratio accepted for one input."""

    max_bytes: int
    max_ratio: float

    @classmethod
    def from_settings(cls, settings=None) -> Budget:
        """The budget of ``CTLENS_MAX_ARCHIVE_BYTES`` and ``CTLENS_MAX_ARCHIVE_RATIO``.

        Example:
            >>> Budget.from_settings().max_ratio > 1
            True
        """
        if settings is None:
            from ctlens.core.settings import get_settings

            settings = get_settings()
        return cls(int(settings.max_archive_bytes), float(settings.max_archive_ratio))

    def check(self, expanded: int, compressed: int, what: str | Path | None = None) -> None:
        """Raise :class:`BudgetExceeded` when ``expanded`` bytes from ``compressed`` bytes break the budget.

        Example:
            >>> Budget(1000, 10).check(500, 100)
            >>> Budget(1000, 10).check(2000, 1000)
            Traceback (most recent call last):
            ...
            ctlens.io.decompress_budget.BudgetExceeded: expands beyond 1000 bytes ...
        """
        if expanded > self.max_bytes:
            raise BudgetExceeded(
                f"expands beyond {self.max_bytes} bytes (the decompressed-size limit)",
                path=what,
                hint="set CTLENS_MAX_ARCHIVE_BYTES if this input is trusted",
            )
        if expanded > self.max_ratio * max(compressed, 1):
            raise BudgetExceeded(
                f"expands beyond {self.max_ratio:.0f}x its {compressed} compressed bytes (a decompression bomb?)",
                path=what,
                hint="set CTLENS_MAX_ARCHIVE_RATIO if this input is trusted",
            )


def compression_of(head: bytes) -> str | None:
    """``gzip``, ``bzip2``, ``xz`` or None, from the first bytes.

    Example:
        >>> compression_of(b"\\x1f\\x8b\\x08"), compression_of(b"BZh9"), compression_of(b"NRRD")
        ('gzip', 'bzip2', None)
    """
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def stream_size(path: str | Path, budget: Budget, *, what: str | Path | None = None) -> int:
    """Decompressed size of a gzip / bzip2 / xz file, measured piece by piece within ``budget``.

    Stops at the first piece that breaks the budget (:class:`BudgetExceeded`); a truncated or corrupt stream is a
    :class:`~ctlens.core.errors.CorruptFileError`. ``what`` names the file in errors (default its name).

    Example:
        >>> import bz2, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.bz2"
        >>> _ = path.write_bytes(bz2.compress(b"ct" * 100))
        >>> stream_size(path, Budget(1 << 20, 100))
        200
    """
    path = Path(path)
    shown = what or path.name
    with open(path, "rb") as f:
        kind = compression_of(f.read(8))
    if kind is None:
        raise CorruptFileError("not gzip, bzip2 or xz compressed", path=shown)
    compressed = path.stat().st_size
    total = 0
    try:
        with _OPEN[kind](path, "rb") as stream:
            while piece := stream.read(PIECE):
                total += len(piece)
                budget.check(total, compressed, shown)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise CorruptFileError(f"truncated or corrupt {kind} data ({type(exc).__name__})", path=shown) from None
    return total


def check_declared(declared: int | None, stored: int, compressed: bool, budget: Budget, what=None) -> None:
    """Refuse a header whose declared voxel bytes break ``budget`` against the ``stored`` bytes that hold them.

    Uncompressed voxels only count against the size limit; compressed ones also against the ratio.

    Example:
        >>> check_declared(512 * 512 * 300 * 2, 60_000_000, True, Budget(1 << 30, 100))
        >>> check_declared(256 << 20, 255_000, True, Budget(1 << 30, 100), "bomb.nrrd")
        Traceback (most recent call last):
        ...
        ctlens.io.decompress_budget.BudgetExceeded: bomb.nrrd: expands beyond 100x its 255000 compressed bytes ...
    """
    if declared is None:
        return
    if compressed:
        budget.check(declared, stored, what)
    elif declared > budget.max_bytes:
        budget.check(declared, declared, what)
