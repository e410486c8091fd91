"""``ctlens listen``: a DICOM C-STORE SCP (+ C-ECHO) that analyses each study it receives.

The :class:`Listener` accepts associations from the calling AE titles of its allow-list (others are rejected
with reason "calling AE title not recognised") or from anyone with ``accept_any``. It accepts every storage
SOP class (CT, MR, secondary capture, SEG, SR, dose reports, ...) in the uncompressed and compressed transfer
syntaxes (deflated ones excepted: a few kilobytes can inflate to gigabytes), and writes each instance into its
:class:`~ctlens.connect.spool.Spool` atomically; a full spool answers status 0xA700 (out of resources). An
instance is stored only once its last fragment has arrived, so a dropped association leaves nothing partial.
pynetdicom holds an instance in memory until then, so memory is bounded by ``MAX_ASSOCIATIONS`` times the
largest instance a peer sends; an association that sends nothing for ``IDLE_SECONDS`` is closed (slow drip).
Every connection, before its calling AE title is known, is guarded: a PDU longer than ``MAX_PDU_BYTES`` (a
header announcing gigabytes) closes it at once, and a PDU must arrive whole within ``IDLE_SECONDS``, so an
unknown peer can neither make the listener buffer its stream nor hold one of the association slots.
An instance whose dataset names another SOP Instance or SOP Class than its C-STORE request is refused.

A worker thread watches the spool: a study that has received nothing for ``quiet_seconds`` is handed to
``on_study`` (default: :func:`ctlens.connect.study_job.process_study` - analysis, ``findings.json``, DICOM
SEG / SR in ``<results_dir>/<study key>/``, sent on to ``destination``). Studies are processed one at a time.
A study that fails gets ``error.txt`` (one line) in its results folder, is logged and stays in the spool (it
is tried again at the next start); one that succeeds is removed from the spool unless ``keep_spool``.

Example:
    >>> import tempfile
    >>> spool = Path(tempfile.mkdtemp())
    >>> with Listener("CTLENS", 0, spool, allowed_ae_titles=["MODALITY"], host="127.0.0.1") as node:
    ...     node.port > 0
    True
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ctlens.connect.dicom_node import check_ae_title
from ctlens.connect.spool import Spool, SpooledStudy
from ctlens.core.errors import CTLensError, PacsError
from ctlens.core.optional import require

__all__ = ["Listener", "accepted_transfer_syntaxes"]

log = logging.getLogger(__name__)

MAX_ASSOCIATIONS = 4
"""Associations served at once (each holds at most one incoming instance in memory)."""
IDLE_SECONDS = 60.0
"""An association that sends nothing for this long is closed; each PDU must arrive whole within it."""
ACSE_SECONDS = 30.0
"""A connection that has not completed its association request within this long is closed."""
MAX_PDU_BYTES = 1024 * 1024
"""Longest PDU read from a peer (we offer 256 KiB P-DATA PDUs; an association request is a few kilobytes)."""

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_CLASS_MISMATCH = 0xA900
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
_PLAIN_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]


def accepted_transfer_syntaxes() -> list[str]:
    """The transfer syntaxes the listener accepts: all pynetdicom knows except the deflated ones.

    Example:
        >>> syntaxes = accepted_transfer_syntaxes()  # doctest: +SKIP
        >>> "1.2.840.10008.1.2.4.70" in syntaxes, "1.2.840.10008.1.2.1.99" in syntaxes  # doctest: +SKIP
        (True, False)
    """
    pynetdicom = require("pynetdicom", extra="pacs")
    return [ts for ts in pynetdicom.ALL_TRANSFER_SYNTAXES if ts not in _DEFLATED]


class Listener:
    """A C-STORE / C-ECHO SCP on ``host:port`` (``port=0``: any free port, see :attr:`port`).

    ``on_study(study: SpooledStudy)`` processes a quiet study (its return value's ``summary()``, if any, is
    reported); ``on_event(line)`` receives one line per received study, result, failure and refused
    association (for the CLI; without ``on_event`` they go to the ``ctlens.connect.listener`` log).
    ``results_dir`` defaults to ``<spool_dir>-results``; ``keep_spool`` keeps processed studies in the spool.
    """

    def __init__(
        self,
        ae_title: str,
        port: int,
        spool_dir: str | os.PathLike[str],
        *,
        allowed_ae_titles: Sequence[str] = (),
        accept_any: bool = False,
        quiet_seconds: float = 10.0,
        max_spool_bytes: int | None = None,
        on_study: Callable[[SpooledStudy], Any] | None = None,
        destination: str | None = None,
        results_dir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        on_event: Callable[[str], None] | None = None,
        keep_spool: bool = False,
        uid_root: str | None = None,
    ) -> None:
        from ctlens.core.settings import get_settings

        self.ae_title = check_ae_title(ae_title)
        self.allowed = [check_ae_title(t, "allowed calling AE title") for t in allowed_ae_titles]
        if not self.allowed and not accept_any:
            raise PacsError(
                "no calling AE title is allowed to send",
                hint="pass --allow-ae AET (repeatable) or --accept-any (trusted networks only)",
            )
        self.accept_any = accept_any
        self.host = host
        self.quiet_seconds = float(quiet_seconds)
        settings = get_settings()
        self.spool_dir = Path(spool_dir)
        self.max_spool_bytes = int(max_spool_bytes if max_spool_bytes is not None else settings.listen_max_spool_bytes)
        self.results_dir = (
            Path(results_dir) if results_dir else self.spool_dir.with_name(self.spool_dir.name + "-results")
        )
        self.destination = destination
        if destination:
            from ctlens.connect.destination import destination_kind

            destination_kind(destination)  # a bad address fails at start, not after the first analysis
        self.keep_spool = keep_spool
        self.uid_root = uid_root if uid_root is not None else settings.dicom_uid_root
        if self.uid_root:
            from ctlens.connect.dicom_identity import new_uid

            new_uid(self.uid_root)  # a bad UID root fails at start, not after each analysis
        if not 0 <= int(port) <= 65535:
            raise PacsError(f"port {port} is not a valid TCP port", hint="use 1-65535 (0: any free port)")
        self.on_study = on_study or self._default_on_study
        self.on_event = on_event
        self._requested_port = int(port)
        self._spool: Spool | None = None
        self._ae: Any = None
        self._server: Any = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system when 0 was asked)."""
        return int(self._server.server_address[1]) if self._server is not None else self._requested_port

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            raise RuntimeError("the listener is not started")
        return self._spool

    def start(self) -> None:
        """Open the spool, start the SCP and the worker thread; return at once."""
        pynetdicom = require("pynetdicom", extra="pacs")
        evt = pynetdicom.evt
        self._spool = Spool(self.spool_dir, self.max_spool_bytes)
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.results_dir):
                pass  # the results folder takes files: found now, not after the first analysis
        except OSError as exc:
            self._spool.close()
            self._spool = None
            raise PacsError(
                f"cannot write to the results folder ({exc.strerror or exc})",
                path=self.results_dir,
                hint="choose another --results folder or make it writable",
            ) from None
        try:
            ae = pynetdicom.AE(ae_title=self.ae_title)
            syntaxes = accepted_transfer_syntaxes()
            for cx in pynetdicom.AllStoragePresentationContexts:
                ae.add_supported_context(cx.abstract_syntax, syntaxes)
            ae.add_supported_context("1.2.840.10008.1.1", _PLAIN_SYNTAXES)  # Verification (C-ECHO)
            ae.require_calling_aet = [] if self.accept_any else self.allowed
            ae.require_called_aet = False
            ae.maximum_pdu_size = 256 * 1024
            ae.maximum_associations = MAX_ASSOCIATIONS
            ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = ACSE_SECONDS, IDLE_SECONDS, IDLE_SECONDS
            handlers = [
                (evt.EVT_CONN_OPEN, _guard_connection),
                (evt.EVT_C_STORE, self._handle_store),
                (evt.EVT_C_ECHO, lambda event: STATUS_SUCCESS),
                (evt.EVT_REJECTED, self._handle_rejected),
            ]
            self._server = ae.start_server((self.host, self._requested_port), block=False, evt_handlers=handlers)
        except OSError as exc:
            self._spool.close()
            self._spool = None
            raise PacsError(
                f"cannot listen on {self.host}:{self._requested_port} ({exc.strerror or exc})",
                hint="choose another --port or stop the program using it",
            ) from None
        except BaseException:
            self._spool.close()
            self._spool = None
            raise
        self._ae = ae
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="ctlens-listener-worker", daemon=True)
        self._worker.start()
        log.info("listening as %s on %s:%d", self.ae_title, self.host, self.port)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting associations (open ones are aborted), let the worker finish its current study (at most
        ``timeout`` seconds), release the spool. Safe to call twice."""
        self._stop.set()
        if self._ae is not None:
            self._ae.shutdown()
            self._ae, self._server = None, None
        if self._worker is not None:
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("the analysis in progress is still running; its study stays in the spool")
            self._worker = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to return (safe in a signal handler); it then calls :meth:`stop`."""
        self._stop.set()

    def serve_forever(self) -> None:
        """Start (unless started) and serve until :meth:`request_stop` / :meth:`stop` or Ctrl-C."""
        if self._server is None:
            self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            self._event("stopping: finishing the study in progress, if any (Ctrl-C again to abort it)")
        finally:
            self.stop()

    def __enter__(self) -> Listener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- events ------------------------------------------------------------------------------------------------
    def _event(self, line: str, level: int = logging.INFO) -> None:
        """Report one line: to ``on_event`` when given (then logged at DEBUG only, not twice), else to the log."""
        log.log(level if self.on_event is None else logging.DEBUG, "%s", line)
        if self.on_event is not None:
            try:
                self.on_event(line)
            except Exception:  # noqa: BLE001 (a broken printer must not stop the listener)
                log.debug("on_event failed", exc_info=True)

    def _handle_rejected(self, event: Any) -> None:
        calling = str(event.assoc.requestor.ae_title or "").strip()
        self._event(f"refused an association from calling AE title {calling!r} (not in the allow-list)")

    def _handle_store(self, event: Any) -> Any:
        """C-STORE: decode the UIDs, write the instance to the spool, answer a status."""
        try:
            ds = event.dataset
            request = event.request
            affected = str(request.AffectedSOPInstanceUID or "")
            sop_uid = str(ds.get("SOPInstanceUID", "") or affected)
            study_uid, series_uid = str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
            if not (study_uid.strip() and series_uid.strip() and sop_uid.strip()):
                return _status(STATUS_CANNOT_UNDERSTAND, "missing Study/Series/SOP Instance UID")
            if affected and sop_uid != affected:  # which instance is it? refused rather than filed under a guess
                return _status(STATUS_CANNOT_UNDERSTAND, "SOP Instance UID differs from the C-STORE request's")
            sop_class = str(ds.get("SOPClassUID", "") or "")
            if sop_class and sop_class != str(request.AffectedSOPClassUID or sop_class):
                return _status(STATUS_CLASS_MISMATCH, "SOP Class UID differs from the C-STORE request's")
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # noqa: BLE001 (a dataset that cannot be decoded is refused, not fatal)
            log.debug("cannot decode a received dataset", exc_info=True)
            return _status(STATUS_CANNOT_UNDERSTAND, f"cannot decode ({type(exc).__name__})")
        try:
            self.spool.store(data, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
        except PacsError as exc:
            log.warning("refused an instance: %s", exc.reason)
            return _status(STATUS_OUT_OF_RESOURCES, "spool full" if "full" in exc.reason else "cannot store")
        except Exception:  # noqa: BLE001
            log.exception("cannot store a received instance")
            return _status(STATUS_OUT_OF_RESOURCES, "cannot store")
        return STATUS_SUCCESS

    # -- the worker --------------------------------------------------------------------------------------------
    def _work(self) -> None:
        poll = min(1.0, max(0.05, self.quiet_seconds / 4))
        while not self._stop.is_set():
            spool = self._spool
            if spool is None:
                return
            for key in spool.quiet_studies(self.quiet_seconds):
                if self._stop.is_set():
                    return
                study = spool.claim(key)
                if study is not None:
                    self._process(spool, study)
            self._stop.wait(poll)

    def _process(self, spool: Spool, study: SpooledStudy) -> None:
        mb = study.bytes / 1e6
        self._event(f"study {study.key}: received {study.instances} instance(s), {mb:.1f} MB; processing")
        ok = False
        try:
            result = self.on_study(study)
            ok = True
            summary = result.summary() if hasattr(result, "summary") else "done"
            self._event(f"study {study.key}: {summary}")
        except Exception as exc:  # noqa: BLE001 (one study's failure never stops the listener)
            line = _one_line(exc)
            log.debug("study %s failed", study.key, exc_info=True)
            self._event(f"study {study.key} failed: {line}", logging.WARNING)
            self._record_error(study.key, line)
        finally:
            spool.release(study, remove=ok and not self.keep_spool)

    def _record_error(self, key: str, line: str) -> None:
        from ctlens.io.files import atomic_output

        try:
            folder = self.results_dir / key
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(folder / "error.txt") as tmp:
                tmp.write_text(line + "\n", encoding="utf-8")
        except (OSError, CTLensError) as exc:
            log.warning("cannot record the failure of study %s: %s", key, exc)

    def _default_on_study(self, study: SpooledStudy) -> Any:
        from ctlens.connect.study_job import process_study

        return process_study(
            study, self.results_dir, destination=self.destination, calling_ae=self.ae_title, uid_root=self.uid_root
        )


def _guard_connection(event: Any) -> None:
    """EVT_CONN_OPEN: bound every read of the new connection (see the module docstring)."""
    assoc_socket = event.assoc.dul.socket
    raw = getattr(assoc_socket, "socket", None)
    if isinstance(raw, socket.socket):
        raw.settimeout(IDLE_SECONDS)
        assoc_socket.recv = _bounded_recv(raw)


def _bounded_recv(raw: socket.socket) -> Callable[[int], bytearray]:
    """A replacement for pynetdicom's ``AssociationSocket.recv``: at most ``MAX_PDU_BYTES``, within
    ``IDLE_SECONDS``; an OSError (which pynetdicom takes as a closed connection) otherwise.

    Example:
        >>> a, b = socket.socketpair()
        >>> _ = a.sendall(b"abcdef")
        >>> bytes(_bounded_recv(b)(6))
        b'abcdef'
        >>> _bounded_recv(b)(MAX_PDU_BYTES + 1)
        Traceback (most recent call last):
        ...
        OSError: a PDU of 1048577 bytes is longer than the 1048576 accepted
        >>> a.close(); b.close()
    """

    def recv(nr_bytes: int) -> bytearray:
        if nr_bytes > MAX_PDU_BYTES:
            raise OSError(f"a PDU of {nr_bytes} bytes is longer than the {MAX_PDU_BYTES} accepted")
        end = time.monotonic() + IDLE_SECONDS
        data = bytearray()
        while len(data) < nr_bytes:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"a PDU did not arrive whole within {IDLE_SECONDS:g} s")
            raw.settimeout(left)
            chunk = raw.recv(min(nr_bytes - len(data), 64 * 1024))
            if not chunk:
                break  # closed by the peer: pynetdicom sees the short read
            data += chunk
        raw.settimeout(IDLE_SECONDS)
        return data

    return recv


def _one_line(exc: BaseException) -> str:
    """A failure as one line: a CTLensError's own message, else the exception type and its first line."""
    if isinstance(exc, CTLensError):
        return exc.one_line()
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _status(code: int, comment: str) -> Any:
    """A C-STORE response status with an Error Comment (at most 64 characters)."""
    pydicom = require("pydicom", extra="core")
    status = pydicom.Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status
