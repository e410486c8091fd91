"""``ctlens listen`` against hostile or careless DICOM peers: real pynetdicom associations and raw sockets.

Hostile UIDs, missing UIDs, a dataset that is not the instance its C-STORE request names, deflated transfer
syntaxes, connections that announce a gigabyte PDU or send nothing, more associations than allowed, a study
that grows while it is analysed, a spool another process holds, results and spool folders that cannot be written.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from fake_instances import ct_slice
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

from ctlens.connect import listener as listener_module
from ctlens.connect.listener import MAX_ASSOCIATIONS, Listener
from ctlens.connect.spool import LOCK_NAME, study_key
from ctlens.core.errors import CTLensError, PacsError

pynetdicom = pytest.importorskip("pynetdicom")

SCU = "HOSTILE"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
MR_CLASS = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"


def associate(port: int, syntaxes: tuple[str, ...] = (ExplicitVRLittleEndian,), calling: str = SCU):
    ae = pynetdicom.AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(CT_CLASS, list(syntaxes))
    ae.add_requested_context(VERIFICATION)
    return ae.associate("127.0.0.1", port, ae_title="CTLENS")


def spooled(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm") if p.is_file())


def wait_for(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Listener]:
    """A listener that only stores (quiet time 1 h)."""
    listener = Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU], quiet_seconds=3600)
    listener.start()
    yield listener
    listener.stop()


# --- what an instance says about itself -----------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI", "ignore:The value length")
def test_hostile_uids_are_hashed_into_the_spool(node: Listener, tmp_path: Path) -> None:
    ds = ct_slice("../../../etc", "1." + "9" * 198, 0)  # (pynetdicom itself refuses request UIDs over 64)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "/tmp/evil/" + "x" * 54
    second = ct_slice("../../../etc", "a\x00b", 1)
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = ".."
    assoc = associate(node.port)
    assert [assoc.send_c_store(d).Status for d in (ds, second)] == [0, 0]
    assoc.release()
    files = spooled(node.spool_dir)
    assert len(files) == 2
    for path in files:
        parts = path.relative_to(node.spool_dir).parts
        assert len(parts) == 3 and all(len(p.removesuffix(".dcm")) == 24 for p in parts)
    assert {p for p in tmp_path.rglob("*") if p.is_file()} == {*files, node.spool_dir / LOCK_NAME}
    assert node.spool.studies() == {study_key("../../../etc"): 2}


def test_instance_without_uids_is_refused(node: Listener) -> None:
    ds = ct_slice(generate_uid(), generate_uid())
    del ds.StudyInstanceUID
    assoc = associate(node.port)
    status = assoc.send_c_store(ds)
    assoc.release()
    assert status.Status == 0xC000 and "missing" in status.ErrorComment
    assert spooled(node.spool_dir) == []


def test_dataset_that_is_not_the_requested_instance_is_refused(
    node: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pynetdicom's chunked sending names the instance from the file meta, so the two can be made to differ."""
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    other_uid, other_class, good = (ct_slice(generate_uid(), generate_uid()) for _ in range(3))
    other_uid.SOPInstanceUID = other_uid.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7.1"
    paths = []
    for n, ds in enumerate((other_uid, other_class, good)):
        paths.append(tmp_path / f"{n}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)

    def second_occurrence(path: Path, old: str, new: str) -> None:  # the dataset's, after the file meta's
        assert len(old) == len(new)
        data = path.read_bytes()
        at = data.index(old.encode(), data.index(old.encode()) + 1)
        path.write_bytes(data[:at] + new.encode() + data[at + len(old) :])

    second_occurrence(paths[0], "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.2")  # the request names another instance
    second_occurrence(paths[1], CT_CLASS, MR_CLASS)  # the dataset says MR, the request (file meta) says CT
    assoc = associate(node.port)
    statuses = [assoc.send_c_store(p) for p in paths]
    assoc.release()
    assert statuses[0].Status == 0xC000 and "differs" in statuses[0].ErrorComment
    assert statuses[1].Status == 0xA900 and "Class" in statuses[1].ErrorComment
    assert statuses[2].Status == 0x0000
    (stored,) = spooled(node.spool_dir)
    assert pydicom.dcmread(stored).SOPInstanceUID == good.SOPInstanceUID


def test_deflated_transfer_syntax_is_not_accepted(node: Listener) -> None:
    assoc = associate(node.port, syntaxes=(DeflatedExplicitVRLittleEndian,))
    try:
        assert assoc.is_established  # Verification is accepted; the deflated CT context is not
        assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [VERIFICATION]
        assert CT_CLASS in [cx.abstract_syntax for cx in assoc.rejected_contexts]
    finally:
        assoc.release()


# --- connections that hold the listener ---------------------------------------------------------------------------
def test_idle_association_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_module, "IDLE_SECONDS", 1.0)
    with Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU], quiet_seconds=3600) as listener:
        assoc = associate(listener.port)
        assert assoc.is_established
        wait_for(lambda: not assoc.is_established, 5, "the idle association to be closed")
        assert assoc.is_aborted


def _raw_header(port: int, length: int) -> socket.socket:
    """A TCP connection that sends an A-ASSOCIATE-RQ PDU header announcing ``length`` bytes, and nothing else."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(struct.pack(">BBI", 0x01, 0, length))
    return sock


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_unknown_peers_can_hold_neither_slots_nor_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any AE title is known: a PDU header announcing 4 GB, or a small one never completed."""
    monkeypatch.setattr(listener_module, "IDLE_SECONDS", 1.0)
    monkeypatch.setattr(listener_module, "ACSE_SECONDS", 1.0)
    with Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU], quiet_seconds=3600) as listener:
        huge = _raw_header(listener.port, 0xFFFFFFF0)
        try:
            refused = _closed_by_peer(huge, 3)
        finally:
            huge.close()  # (else a listener without the guard would wait for the 4 GB forever, also at stop)
        assert refused, "a 4 GB PDU header was read into memory instead of refused"
        stalled = [_raw_header(listener.port, 1000) for _ in range(MAX_ASSOCIATIONS)]  # every slot
        try:
            assert all(_closed_by_peer(s, 4) for s in stalled), "half-sent PDUs were waited for forever"
            end = time.monotonic() + 5
            while True:  # the slots are free again within the ACSE timeout
                assoc = associate(listener.port)
                if assoc.is_established or time.monotonic() > end:
                    break
                time.sleep(0.2)
            assert assoc.is_established, "the stalled connections still hold every association slot"
            assert assoc.send_c_echo().Status == 0
            assoc.release()
        finally:
            for s in stalled:
                s.close()


def test_fifth_association_is_refused_until_one_ends(node: Listener) -> None:
    open_ones = [associate(node.port) for _ in range(MAX_ASSOCIATIONS)]
    try:
        assert all(a.is_established for a in open_ones)
        fifth = associate(node.port)
        assert fifth.is_rejected and fifth.acceptor.primitive.reason_str == "Local limit exceeded"
        open_ones.pop().release()
        end = time.monotonic() + 5
        while not (again := associate(node.port)).is_established and time.monotonic() < end:
            time.sleep(0.1)
        assert again.is_established and again.send_c_store(ct_slice(generate_uid(), generate_uid())).Status == 0
        again.release()
    finally:
        for a in open_ones:
            a.release()


# --- processing ---------------------------------------------------------------------------------------------------
def test_study_that_grows_during_its_analysis_is_analysed_again(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def on_study(study) -> None:
        calls.append(study.instances)
        if len(calls) == 1:
            started.set()
            assert release.wait(20)

    study, series = generate_uid(), generate_uid()
    with Listener(
        "CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU], quiet_seconds=0.3, on_study=on_study
    ) as listener:
        assoc = associate(listener.port)
        assert [assoc.send_c_store(ct_slice(study, series, k)).Status for k in range(2)] == [0, 0]
        assert started.wait(20)
        assert assoc.send_c_store(ct_slice(study, series, 2)).Status == 0  # while the first batch is analysed
        assoc.release()
        release.set()
        wait_for(lambda: len(calls) == 2, 20, "the second analysis")
        wait_for(lambda: listener.spool.studies() == {}, 10, "the study to leave the spool")
    assert calls == [2, 3]
    assert spooled(tmp_path / "spool") == []


def test_spool_held_by_another_process_is_refused(tmp_path: Path) -> None:
    code = (
        "import sys, time; from ctlens.connect.spool import Spool; s = Spool(sys.argv[1], 1000); "
        "print('ready', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "spool")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(PacsError, match="in use by another process"):
            Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU]).start()
    finally:
        holder.kill()
        holder.wait(10)
    with Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU]):
        pass  # free again once the other process is gone


def test_results_folder_that_cannot_be_written_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    bad = Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU], results_dir=tmp_path / "a-file" / "out")
    with pytest.raises(PacsError, match="cannot write to the results folder") as info:
        bad.start()
    assert str(tmp_path / "a-file" / "out") in str(info.value) and "--port" not in str(info.value)
    with Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU], results_dir=tmp_path / "ok"):
        pass  # the failed start released the spool


def test_spool_lock_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "spool" / LOCK_NAME).mkdir(parents=True)  # the lock file's name is taken by a folder
    with pytest.raises(PacsError, match="cannot open the spool folder's lock file"):
        Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU]).start()


def test_careless_settings_fail_at_start(tmp_path: Path) -> None:
    for port in (70000, -1):
        with pytest.raises(PacsError, match=f"port {port} is not a valid TCP port"):
            Listener("CTLENS", port, tmp_path / "spool", allowed_ae_titles=[SCU])
    with pytest.raises(CTLensError, match="is not a valid UID root"):
        Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU], uid_root="1.2.03")
    assert not (tmp_path / "spool").exists()
