"""DICOM network peers: ``dicom://AET@host:port`` addresses, C-ECHO and C-STORE SCU (sending instances).

A peer address names the called AE title, the host and the port (default 104), and optionally our own
(calling) AE title: ``dicom://ORTHANC@pacs.example.org:4242?calling=CTLENS``. It carries no password (DICOM
associations have none); a ``user:password@`` form is refused without echoing the password.

:func:`send_instances` reads the SOP class and transfer syntax of every item (file or pydicom Dataset),
proposes one presentation context per SOP class and compressed transfer syntax it finds, plus an uncompressed
(explicit / implicit VR little endian) context per SOP class, so a peer that refuses a compressed syntax still
gets the instance, decompressed. More than 128 contexts are split over several associations. pynetdicom (the
``pacs`` extra) is imported only when a function here needs it.

Example:
    >>> peer = parse_peer("dicom://ORTHANC@127.0.0.1:4242?calling=CTLENS")
    >>> peer.ae_title, peer.host, peer.port, peer.calling_ae, str(peer)
    ('ORTHANC', '127.0.0.1', 4242, 'CTLENS', 'ORTHANC@127.0.0.1:4242')
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ctlens.core.errors import PacsError
from ctlens.core.optional import require

__all__ = [
    "DEFAULT_DICOM_PORT",
    "DicomPeer",
    "StoreSummary",
    "check_ae_title",
    "dicom_files",
    "echo",
    "parse_peer",
    "send_instances",
]

DEFAULT_DICOM_PORT = 104
"""The well-known DICOM port (PS3.8), used when a ``dicom://`` address names none."""
MAX_CONTEXTS = 128
"""Most presentation contexts one association may propose (PS3.8: odd context ids 1..255)."""
_UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")  # explicit, implicit VR little endian
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory: a file-set index, not an instance to store


def check_ae_title(title: str, what: str = "AE title") -> str:
    """``title`` stripped, if it is a valid AE title (1-16 printable ASCII characters, no backslash).

    Example:
        >>> check_ae_title(" CTLENS ")
        'CTLENS'
        >>> check_ae_title("a\\\\b")
        Traceback (most recent call last):
        ...
        ctlens.core.errors.PacsError: invalid AE title 'a\\\\b': use 1-16 printable ASCII characters, no backslash
    """
    text = str(title).strip()
    if not 1 <= len(text) <= 16 or "\\" in text or not all(" " <= ch <= "~" for ch in text):
        raise PacsError(f"invalid {what} {title!r}: use 1-16 printable ASCII characters, no backslash")
    return text


@dataclass(frozen=True)
class DicomPeer:
    """A DICOM node: called AE title, host, port, and the calling AE title to use (None: the configured one)."""

    ae_title: str
    host: str
    port: int = DEFAULT_DICOM_PORT
    calling_ae: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"

    @property
    def url(self) -> str:
        """The ``dicom://`` address of this peer.

        Example:
            >>> DicomPeer("PACS", "::1", 11112).url
            'dicom://PACS@[::1]:11112'
        """
        query = f"?calling={self.calling_ae}" if self.calling_ae else ""
        return f"dicom://{self}{query}"


def parse_peer(address: str) -> DicomPeer:
    """Parse ``dicom://CALLED_AET@host[:port][?calling=OURAET]`` into a :class:`DicomPeer`.

    Example:
        >>> parse_peer("dicom://PACS@[::1]").port
        104
        >>> try:
        ...     parse_peer("dicom://PACS:secret@host:104")
        ... except PacsError as error:
        ...     "secret" in str(error), error.reason
        (False, 'a dicom:// address carries no password')
    """
    text = str(address).strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise PacsError(f"not a valid dicom:// address ({exc})", hint="use dicom://AET@host:port") from None
    host = parts.hostname or ""
    shown = f"dicom://{unquote(parts.username or '')}@{host}{f':{port}' if port else ''}"
    if port is not None and not 0 < port < 65536:
        raise PacsError(f"port {port} is not a valid TCP port", path=shown, hint="use a port 1-65535")
    if parts.scheme.lower() != "dicom":
        raise PacsError("not a dicom:// address", path=shown, hint="use dicom://AET@host:port")
    if parts.password is not None:
        raise PacsError(
            "a dicom:// address carries no password",
            path=shown,
            hint="DICOM associations have none; remove ':...' after the AE title",
        )
    if not parts.username:
        raise PacsError("the address names no called AE title", path=shown, hint="use dicom://AET@host:port")
    if not host:
        raise PacsError("the address names no host", path=shown, hint="use dicom://AET@host:port")
    if parts.path not in ("", "/") or parts.fragment:
        raise PacsError("a dicom:// address has no path", path=shown, hint="use dicom://AET@host:port")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"calling"})
    if unknown:
        raise PacsError(f"unknown option(s) {', '.join(unknown)}", path=shown, hint="only ?calling=OURAET is known")
    calling = query.get("calling", [None])[-1]
    return DicomPeer(
        ae_title=check_ae_title(unquote(parts.username), "called AE title"),
        host=host,
        port=port or DEFAULT_DICOM_PORT,
        calling_ae=check_ae_title(calling, "calling AE title") if calling is not None else None,
    )


def _peer(peer: DicomPeer | str) -> DicomPeer:
    return peer if isinstance(peer, DicomPeer) else parse_peer(peer)


def _calling(peer: DicomPeer, calling_ae: str | None) -> str:
    if calling_ae:
        return check_ae_title(calling_ae, "calling AE title")
    if peer.calling_ae:
        return peer.calling_ae
    from ctlens.core.settings import get_settings

    return check_ae_title(get_settings().listen_ae_title, "calling AE title")


def _new_ae(calling: str, timeout: float) -> Any:
    pynetdicom = require("pynetdicom", extra="pacs")
    ae = pynetdicom.AE(ae_title=calling)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    return ae


def _associate(ae: Any, peer: DicomPeer, what: str) -> Any:
    """An established association with ``peer``, or a PacsError saying why not."""
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        primitive = assoc.acceptor.primitive
        reason = f": {primitive.reason_str[0].lower()}{primitive.reason_str[1:]}" if primitive else ""
        kind = f" ({primitive.result_str.lower()})" if primitive else ""
        raise PacsError(
            f"{what}: the association was rejected{reason}{kind}",
            path=str(peer),
            hint=f"check that the peer knows the calling AE title {ae.ae_title!r} and the called AE title",
        )
    raise PacsError(
        f"{what}: no association (connection refused, aborted or timed out)",
        path=str(peer),
        hint="check the host, port and that the DICOM node is running",
    )


def echo(peer: DicomPeer | str, *, calling_ae: str | None = None, timeout: float = 10.0) -> float:
    """C-ECHO ``peer``; return the round trip in seconds, or raise :class:`PacsError`.

    Example:
        >>> echo("dicom://ORTHANC@127.0.0.1:4242")  # doctest: +SKIP
        0.004
    """
    peer = _peer(peer)
    ae = _new_ae(_calling(peer, calling_ae), timeout)
    ae.add_requested_context("1.2.840.10008.1.1")
    start = time.perf_counter()
    assoc = _associate(ae, peer, "C-ECHO")
    try:
        status = assoc.send_c_echo()
    finally:
        _close(assoc)
    code = getattr(status, "Status", None)
    if code != 0x0000:
        why = "no answer" if code is None else f"status 0x{code:04X}"
        raise PacsError(f"C-ECHO failed ({why})", path=str(peer), hint="check that the peer supports Verification")
    return time.perf_counter() - start


def _close(assoc: Any) -> None:
    if assoc.is_established:
        assoc.release()
    elif not assoc.is_aborted:
        assoc.abort()


@dataclass
class StoreSummary:
    """What :func:`send_instances` did: instances sent (with warnings among them), failed and the time taken."""

    peer: str
    total: int
    sent: int = 0
    warnings: int = 0
    failed: int = 0
    seconds: float = 0.0
    first_failure: str | None = None

    def __str__(self) -> str:
        text = f"sent {self.sent} of {self.total} instance(s) to {self.peer} in {self.seconds:.1f} s"
        return text + (f" ({self.warnings} with warnings)" if self.warnings else "")


@dataclass
class _Item:
    index: int
    source: Path | Any  # a path or a pydicom Dataset
    sop_class: str
    transfer_syntax: str

    @property
    def label(self) -> str:
        return str(self.source) if isinstance(self.source, Path) else f"dataset #{self.index + 1}"


def dicom_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The DICOM files of ``paths``: files as given, folders searched recursively (hidden and non-DICOM skipped).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.dcm").write_bytes(bytes(128) + b"DICM" + bytes(64))
        >>> _ = (folder / "notes.txt").write_text("not dicom")
        >>> [p.name for p in dicom_files([folder])]
        ['a.dcm']
    """
    from ctlens.io.dicom_magic import looks_like_dicom, read_head

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in rel):
                    if child.name.upper() != "DICOMDIR" and looks_like_dicom(read_head(child)):
                        found.append(child)
        elif path.is_file():
            found.append(path)
        else:
            raise PacsError("no such file or folder", path=path)
    return found


def _describe(index: int, item: Any) -> _Item:
    pydicom = require("pydicom", extra="core")
    if isinstance(item, pydicom.Dataset):
        sop_class = str(item.get("SOPClassUID", ""))
        meta = getattr(item, "file_meta", None)
        ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if not sop_class or "SOPInstanceUID" not in item:
            raise PacsError(f"dataset #{index + 1} has no SOP Class / SOP Instance UID", hint="not a DICOM instance")
        return _Item(index, item, sop_class, ts or _UNCOMPRESSED[0])
    path = Path(item)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["SOPClassUID"])
    except Exception as exc:  # noqa: BLE001 (any parse failure: this file cannot be sent)
        raise PacsError(f"cannot read this DICOM file ({type(exc).__name__})", path=path) from None
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    if not sop_class:
        raise PacsError("not a DICOM instance (no SOP Class UID)", path=path)
    if sop_class == _DICOMDIR_CLASS:
        raise PacsError("a DICOMDIR is a file-set index, not an instance to send", path=path, hint="send the folder")
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not ts:
        ts = "1.2.840.10008.1.2" if ds.original_encoding[0] else _UNCOMPRESSED[0]
    return _Item(index, path, sop_class, ts)


def _batches(items: list[_Item]) -> list[tuple[list[tuple[str, list[str]]], list[_Item]]]:
    """Group items into associations of at most MAX_CONTEXTS contexts: ([(sop_class, [ts...])...], items)."""
    by_class: dict[str, list[_Item]] = {}
    for item in items:
        by_class.setdefault(item.sop_class, []).append(item)
    batches: list[tuple[list[tuple[str, list[str]]], list[_Item]]] = []
    contexts: list[tuple[str, list[str]]] = []
    members: list[_Item] = []
    for sop_class, group in by_class.items():
        special = sorted({i.transfer_syntax for i in group} - set(_UNCOMPRESSED))
        needed = [(sop_class, [ts]) for ts in special[: MAX_CONTEXTS - 1]] + [(sop_class, list(_UNCOMPRESSED))]
        if contexts and len(contexts) + len(needed) > MAX_CONTEXTS:
            batches.append((contexts, members))
            contexts, members = [], []
        contexts += needed
        members += group
    if contexts:
        batches.append((contexts, members))
    return batches


def _accepted(assoc: Any) -> tuple[set[tuple[str, str]], set[str]]:
    """(sop_class, transfer_syntax) pairs accepted, and SOP classes accepted with an uncompressed syntax."""
    exact, plain = set(), set()
    for cx in assoc.accepted_contexts:
        ts = str(cx.transfer_syntax[0])
        exact.add((str(cx.abstract_syntax), ts))
        if ts in _UNCOMPRESSED:
            plain.add(str(cx.abstract_syntax))
    return exact, plain


def _dataset_for(item: _Item, exact: set[tuple[str, str]]) -> Any:
    """The dataset to send for ``item``: read from its file, decompressed when the peer took no context for
    its compressed transfer syntax (only an uncompressed one; a caller's Dataset is copied, not changed)."""
    import copy

    pydicom = require("pydicom", extra="core")
    ds = item.source
    if isinstance(ds, Path):
        ds = pydicom.dcmread(ds, force=True)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        ds = copy.copy(ds) if ds is item.source else ds
        ds.file_meta = pydicom.dataset.FileMetaDataset(meta or {})
        ds.file_meta.TransferSyntaxUID = item.transfer_syntax
    if (item.sop_class, item.transfer_syntax) not in exact and pydicom.uid.UID(item.transfer_syntax).is_compressed:
        ds = copy.deepcopy(ds) if ds is item.source else ds
        ds.decompress()
    return ds


def _send_one(assoc: Any, item: _Item, exact: set[tuple[str, str]], plain: set[str]) -> tuple[str, str]:
    """C-STORE one item: ('ok' | 'warning' | 'failed' | 'aborted', why)."""
    if (item.sop_class, item.transfer_syntax) not in exact and item.sop_class not in plain:
        return "failed", "the peer accepted no presentation context for its SOP class"
    try:
        status = assoc.send_c_store(_dataset_for(item, exact))
    except Exception as exc:  # noqa: BLE001 (unreadable file, no decoder, encoding failure: this item fails)
        if not assoc.is_established:
            return "aborted", "association ended"
        return "failed", f"cannot be sent ({type(exc).__name__}: {str(exc)[:120]})"
    code = getattr(status, "Status", None)
    if code is None:  # no response: the association died
        return "aborted", "no response"
    category = require("pynetdicom.status", extra="pacs").code_to_category(code)
    if category == "Success":
        return "ok", ""
    if category == "Warning":
        return "warning", f"status 0x{code:04X}"
    comment = str(status.get("ErrorComment", "") or "").strip()
    return "failed", f"status 0x{code:04X}" + (f" {comment[:64]}" if comment else "")


def send_instances(
    items: Sequence[str | os.PathLike[str] | Any],
    peer: DicomPeer | str,
    *,
    calling_ae: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> StoreSummary:
    """C-STORE ``items`` (file paths or pydicom Datasets) to ``peer``; return a :class:`StoreSummary`.

    The calling AE title is ``calling_ae``, else the address's ``?calling=``, else the ``listen_ae_title``
    setting. ``progress(done, total)`` is called after each instance. Raises :class:`PacsError` (message: the
    peer, how many instances of how many, why) when the association is rejected or aborted, or when any
    instance is refused (the error's ``summary`` attribute holds the :class:`StoreSummary`).

    Example:
        >>> send_instances(["slice1.dcm", "seg.dcm"], "dicom://ORTHANC@127.0.0.1:4242")  # doctest: +SKIP
        StoreSummary(peer='ORTHANC@127.0.0.1:4242', total=2, sent=2, ...)
    """
    peer = _peer(peer)
    described = [_describe(i, item) for i, item in enumerate(items)]
    summary = StoreSummary(peer=str(peer), total=len(described))
    start = time.perf_counter()
    if not described:
        return summary
    ae = _new_ae(_calling(peer, calling_ae), timeout)
    done = 0
    for contexts, members in _batches(described):
        ae.requested_contexts = []
        for sop_class, syntaxes in contexts:
            ae.add_requested_context(sop_class, syntaxes)
        assoc = _associate(ae, peer, f"C-STORE of {summary.total} instance(s)")
        aborted = False
        try:
            exact, plain = _accepted(assoc)
            for item in members:
                outcome, why = _send_one(assoc, item, exact, plain)
                if outcome == "aborted":
                    aborted = True
                    break
                summary.sent += outcome in ("ok", "warning")
                summary.warnings += outcome == "warning"
                if outcome == "failed":
                    summary.failed += 1
                    summary.first_failure = summary.first_failure or f"{item.label}: {why}"
                done += 1
                if progress is not None:
                    progress(done, summary.total)
        finally:
            _close(assoc)
        if aborted:
            summary.seconds = time.perf_counter() - start
            error = PacsError(
                f"C-STORE aborted: the association ended after {summary.sent} of {summary.total} instance(s) sent",
                path=str(peer),
                hint="the peer aborted or the connection dropped; check the peer's log and retry",
            )
            error.summary = summary  # type: ignore[attr-defined]
            raise error
    summary.seconds = time.perf_counter() - start
    if summary.failed:
        error = PacsError(
            f"C-STORE: {summary.failed} of {summary.total} instance(s) refused, {summary.sent} sent "
            f"(first: {summary.first_failure})",
            path=str(peer),
            hint="check the peer's storage rules and log",
        )
        error.summary = summary  # type: ignore[attr-defined]
        raise error
    return summary
