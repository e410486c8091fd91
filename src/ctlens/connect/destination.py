"""Where instances are sent: a DICOM node (``dicom://AET@host:port``, C-STORE) or a DICOMweb server (STOW-RS).

Used by ``ctlens push`` and by the listener to send its results on. The DICOMweb client is
:class:`ctlens.io.dicomweb.DicomWebClient` (credentials and timeouts from the ``dicomweb_*`` settings);
DICOM nodes are reached with :func:`ctlens.connect.dicom_node.send_instances`. Messages name the server
without any ``user:password@`` part.

Example:
    >>> destination_kind("dicom://PACS@10.0.0.5:104"), destination_kind("https://pacs.example/dicom-web")
    ('dicom', 'dicomweb')
    >>> redact("https://user:secret@pacs.example/dicom-web")
    'https://pacs.example/dicom-web'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ctlens.core.errors import PacsError

__all__ = ["destination_kind", "redact", "send_to"]


def redact(url: str) -> str:
    """``url`` without user name, password, query or fragment (safe to print or log).

    Example:
        >>> redact("dicom://PACS@host:104?calling=ME")
        'dicom://PACS@host:104'
    """
    try:
        parts = urlsplit(str(url).strip())
        netloc = parts.netloc.rpartition("@")[2]
        if parts.scheme.lower() == "dicom" and parts.username:
            netloc = f"{parts.username}@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparsable address>"


def destination_kind(url: str) -> str:
    """``'dicom'`` for ``dicom://`` addresses, ``'dicomweb'`` for ``http(s)://`` ones; PacsError otherwise.

    Example:
        >>> destination_kind("ftp://x")
        Traceback (most recent call last):
        ...
        ctlens.core.errors.PacsError: ftp://x: not a destination (use dicom://AET@host:port or http(s)://host/dicom-web)
    """
    scheme = urlsplit(str(url).strip()).scheme.lower()
    if scheme == "dicom":
        from ctlens.connect.dicom_node import parse_peer

        parse_peer(url)  # a bad address fails now, not after an analysis
        return "dicom"
    if scheme in ("http", "https"):
        return "dicomweb"
    raise PacsError("not a destination", path=redact(url), hint="use dicom://AET@host:port or http(s)://host/dicom-web")


def send_to(
    paths: Sequence[str | os.PathLike[str]],
    url: str,
    *,
    calling_ae: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Send the DICOM files ``paths`` to ``url`` (C-STORE or STOW-RS); return a one-line summary.

    Raises :class:`PacsError` when the destination refuses or fails (see
    :func:`~ctlens.connect.dicom_node.send_instances`).

    Example:
        >>> send_to(["seg.dcm", "sr.dcm"], "dicom://ORTHANC@127.0.0.1:4242")  # doctest: +SKIP
        'sent 2 of 2 instance(s) to ORTHANC@127.0.0.1:4242 in 0.1 s'
    """
    files = [Path(p) for p in paths]
    if destination_kind(url) == "dicom":
        from ctlens.connect.dicom_node import send_instances

        return str(send_instances(files, url, calling_ae=calling_ae, progress=progress))
    from ctlens.io.dicomweb import DicomWebClient

    DicomWebClient.from_settings(url).store(files)
    if progress is not None:
        progress(len(files), len(files))
    return f"stored {len(files)} instance(s) at {redact(url)} (STOW-RS)"
