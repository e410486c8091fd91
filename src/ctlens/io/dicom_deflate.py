"""Deflated DICOM (transfer syntax 1.2.840.10008.1.2.1.99) under the decompression budget.

pydicom inflates a deflated data set in one call before reading any element, so a small file can expand to any
size in memory (a deflate bomb). :func:`check_deflated` measures the inflated size first, in 1 MiB pieces, and
stops at the first piece over the :class:`~ctlens.io.decompress_budget.Budget` (``CTLENS_MAX_ARCHIVE_BYTES`` /
``CTLENS_MAX_ARCHIVE_RATIO``): the data set is refused while it inflates, before pydicom sees it. Other files
cost one look at their first bytes.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "plain.dcm"
    >>> _ = path.write_bytes(bytes(128) + b"DICM")
    >>> check_deflated(path, "plain.dcm") is None
    True
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian

from ctlens.core.errors import CorruptFileError
from ctlens.io.decompress_budget import PIECE, Budget
from ctlens.io.dicom_magic import read_head

__all__ = ["check_deflated", "is_deflated"]


def is_deflated(head: bytes) -> bool:
    """Whether the file meta in ``head`` (a file's first bytes) names the deflated transfer syntax.

    Example:
        >>> is_deflated(b"...1.2.840.10008.1.2.1.99..."), is_deflated(b"...1.2.840.10008.1.2.1..")
        (True, False)
    """
    return DeflatedExplicitVRLittleEndian.encode() in head


def check_deflated(path: str | os.PathLike[str], display: str, budget: Budget | None = None) -> int | None:
    """The inflated size of a deflated DICOM file's data set, within ``budget``; None for any other file.

    Raises :class:`~ctlens.io.decompress_budget.BudgetExceeded` naming ``display`` (the user's name of the file)
    at the first piece over the budget, :class:`~ctlens.core.errors.CorruptFileError` for a broken stream.
    """
    if not is_deflated(read_head(path)):
        return None
    budget = budget or Budget.from_settings()
    with open(path, "rb") as fh:
        try:
            read_preamble(fh, force=True)
            syntax = str(_read_file_meta_info(fh).get("TransferSyntaxUID", ""))  # values convert on access
        except Exception:  # noqa: BLE001 - pydicom reports a damaged header later, with its own reason
            return None
        if syntax != DeflatedExplicitVRLittleEndian:
            return None
        compressed = Path(path).stat().st_size - fh.tell()
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        try:
            while chunk := fh.read(PIECE):
                data = inflater.decompress(chunk, PIECE)
                while True:
                    total += len(data)
                    budget.check(total, compressed, display)
                    if not inflater.unconsumed_tail:
                        break
                    data = inflater.decompress(inflater.unconsumed_tail, PIECE)
            total += len(inflater.flush())
            budget.check(total, compressed, display)
        except zlib.error as exc:
            raise CorruptFileError(f"corrupt deflated data set ({exc})", path=display) from None
    return total
