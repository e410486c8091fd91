"""The C-STORE SCP (`ctlens.connect.listener`), its spool and `ctlens listen`: real pynetdicom associations,
a raw-socket client that drops a transfer halfway, and a real Orthanc as the results' destination."""

from __future__ import annotations

import importlib.util
import os
import signal
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
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ctlens.connect.dicom_node import echo
from ctlens.connect.listener import Listener
from ctlens.connect.spool import LOCK_NAME, TEMP_SUFFIX, Spool, study_key
from ctlens.core.errors import PacsError
from shared_data import data_dir

pynetdicom = pytest.importorskip("pynetdicom")

SCU_AET = "TESTSCU"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
HAS_RESULTS = importlib.util.find_spec("ctlens.connect.results") is not None


def a0002() -> Path:
    return data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"


def scu_associate(port: int, calling: str = SCU_AET, contexts=(CT_CLASS,)):
    ae = pynetdicom.AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for sop_class in contexts:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian])
    ae.add_requested_context("1.2.840.10008.1.1")
    return ae.associate("127.0.0.1", port, ae_title="CTLENS")


def spool_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(complete instances, temporary files) under a spool folder."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != LOCK_NAME]
    return [p for p in files if p.suffix == ".dcm"], [p for p in files if p.name.endswith(TEMP_SUFFIX)]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def quiet_listener(tmp_path: Path) -> Iterator[Listener]:
    """A listener that never processes (quiet time 1 h): for what the spool holds."""
    node = Listener("CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU_AET], host="127.0.0.1", quiet_seconds=3600)
    node.start()
    yield node
    node.stop()


# -- the real series, end to end (analysed once for the module) --------------------------------------------------
@pytest.fixture(scope="module")
def received(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[dict]:
    source = a0002()
    root = tmp_path_factory.mktemp("listen")
    events: list[str] = []
    try:  # the results are sent on to a real Orthanc where one is installed
        orthanc = request.getfixturevalue("orthanc")
        destination = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    except pytest.skip.Exception:
        orthanc, destination = None, None
    node = Listener(
        "CTLENS",
        0,
        root / "spool",
        results_dir=root / "results",
        allowed_ae_titles=[SCU_AET],
        host="127.0.0.1",
        quiet_seconds=1.0,
        keep_spool=True,
        destination=destination,
        on_event=events.append,
    )
    node.start()
    try:
        files = sorted(source.glob("*.dcm"))
        assoc = scu_associate(node.port)
        assert assoc.is_established
        statuses = [assoc.send_c_store(f).Status for f in files]
        assoc.release()
        key = study_key(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        out = root / "results" / key
        done = (lambda: (out / "findings.json").is_file() and (out / "sr.dcm").is_file()) if HAS_RESULTS else None
        wait_for(done or (lambda: (out / "findings.json").is_file()), 180, "the analysis results")
        wait_for(lambda: any("failed" in e or "sent" in e or ".dcm" in e for e in events[1:]), 60, "the study's end")
        yield {"files": files, "statuses": statuses, "key": key, "root": root, "events": events, "orthanc": orthanc}
    finally:
        node.stop()


@pytest.mark.shared_data
def test_received_series_lands_in_spool_and_is_analysed(received: dict) -> None:
    assert received["statuses"] == [0x0000] * len(received["files"]) == [0x0000] * 30
    spool = received["root"] / "spool" / received["key"]
    done, temps = spool_files(spool)
    assert len(done) == 30 and not temps
    assert {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in done} == {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in received["files"]
    }
    out = received["root"] / "results" / received["key"]
    findings = (out / "findings.json").read_text()
    assert '"region": "chest"' in findings
    assert "#0 axial CT 30 slices" in (out / "study.json").read_text()
    assert any("received 30 instance(s)" in e for e in received["events"])


@pytest.mark.shared_data
def test_results_are_dicom_and_sent_on(received: dict) -> None:
    if not HAS_RESULTS:
        pytest.skip("ctlens.connect.results (SEG / SR writer) is not in this tree yet")
    out = received["root"] / "results" / received["key"]
    assert not (out / "error.txt").exists(), (out / "error.txt").read_text()
    modalities = {pydicom.dcmread(p).Modality for p in out.glob("*.dcm")}
    assert {"SEG", "SR"} <= modalities
    if received["orthanc"] is None:
        pytest.skip("Orthanc is not installed: the sending on was not tried")
    stored = received["orthanc"].rest("/instances?expand").json()
    assert sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in stored) == sorted(
        pydicom.dcmread(p).SOPInstanceUID for p in out.glob("*.dcm")
    )
    assert any("sent 2 of 2 instance(s)" in e for e in received["events"])


# -- who may send ---------------------------------------------------------------------------------------------
def test_unknown_calling_ae_is_rejected_and_accept_any_accepts(tmp_path: Path) -> None:
    events: list[str] = []
    with Listener(
        "CTLENS", 0, tmp_path / "a", allowed_ae_titles=[SCU_AET], host="127.0.0.1", on_event=events.append
    ) as node:
        assoc = scu_associate(node.port, calling="INTRUDER")
        assert assoc.is_rejected
        assert assoc.acceptor.primitive.reason_str == "Calling AE title not recognised"
        assert "INTRUDER" in events[-1]
        with pytest.raises(PacsError, match="calling AE title not recognised"):
            echo(f"dicom://CTLENS@127.0.0.1:{node.port}", calling_ae="INTRUDER")
        assert echo(f"dicom://CTLENS@127.0.0.1:{node.port}", calling_ae=SCU_AET) < 5
    with Listener("CTLENS", 0, tmp_path / "b", accept_any=True, host="127.0.0.1") as node:
        assoc = scu_associate(node.port, calling="INTRUDER")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    with pytest.raises(PacsError, match="no calling AE title is allowed"):
        Listener("CTLENS", 0, tmp_path / "c")


# -- nothing partial ------------------------------------------------------------------------------------------
def _element(group: int, elem: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, elem, len(value)) + value


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def raw_partial_store(port: int, dataset: bytes, sop_uid: str, fraction: float = 0.5) -> None:
    """Associate over a plain socket, start a C-STORE, send ``fraction`` of the data set, then close the socket."""
    ts = ExplicitVRLittleEndian.encode()
    context = bytes([1, 0, 0, 0]) + _item(0x30, CT_CLASS.encode()) + _item(0x40, ts)
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.826.0.1.3680043.9.9999")
    body = struct.pack(">HH", 1, 0) + b"CTLENS".ljust(16) + SCU_AET.encode().ljust(16) + bytes(32)
    body += _item(0x10, b"1.2.840.10008.3.1.1.1") + _item(0x20, context) + _item(0x50, user)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack(">BBI", 1, 0, len(body)) + body)
        answer = sock.recv(6)
        assert answer[0] == 0x02, f"association not accepted (PDU type {answer[0]:#x})"
        sock.recv(65536)
        command = b"".join(
            [
                _element(0, 0x0002, CT_CLASS.encode()),
                _element(0, 0x0100, struct.pack("<H", 0x0001)),  # C-STORE-RQ
                _element(0, 0x0110, struct.pack("<H", 1)),
                _element(0, 0x0700, struct.pack("<H", 0)),
                _element(0, 0x0800, struct.pack("<H", 0x0000)),  # a data set follows
                _element(0, 0x1000, sop_uid.encode()),
            ]
        )
        command = _element(0, 0x0000, struct.pack("<I", len(command))) + command

        def pdata(payload: bytes, control: int) -> bytes:
            pdv = struct.pack(">IBB", len(payload) + 2, 1, control) + payload
            return struct.pack(">BBI", 4, 0, len(pdv)) + pdv

        sock.sendall(pdata(command, 0b11))  # command, last fragment
        cut = int(len(dataset) * fraction)
        for start in range(0, cut, 8192):
            sock.sendall(pdata(dataset[start : min(start + 8192, cut)], 0b00))  # data, more to come
        time.sleep(0.2)
    # the socket is closed here, mid data set


def test_dropped_associations_leave_only_complete_instances(quiet_listener: Listener) -> None:
    node = quiet_listener
    study, series = generate_uid(), generate_uid()
    assoc = scu_associate(node.port)
    for i in range(3):
        assert assoc.send_c_store(ct_slice(study, series, i)).Status == 0
    assoc.abort()  # the SCU aborts after three instances

    big = ct_slice(study, series, 9, size=1024)  # 2 MB of pixel data
    encoded = pydicom.filewriter.DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(encoded, big)  # explicit VR little endian, no file meta
    assert len(encoded.getvalue()) > 2_000_000
    raw_partial_store(node.port, encoded.getvalue(), big.SOPInstanceUID)
    time.sleep(0.3)

    done, temps = spool_files(node.spool_dir)
    assert len(done) == 3 and not temps
    assert node.spool.studies() == {study_key(study): 3}
    # and the listener keeps serving
    assoc = scu_associate(node.port)
    assert assoc.send_c_store(ct_slice(study, series, 4)).Status == 0
    assoc.release()
    assert len(spool_files(node.spool_dir)[0]) == 4


def test_full_spool_refuses_with_a700(tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    first = ct_slice(study, series, 0, size=64)
    with Listener(
        "CTLENS", 0, tmp_path / "spool", allowed_ae_titles=[SCU_AET], host="127.0.0.1", max_spool_bytes=12_000
    ) as node:
        assoc = scu_associate(node.port)
        assert assoc.send_c_store(first).Status == 0x0000  # ~8.5 kB
        refused = assoc.send_c_store(ct_slice(study, series, 1, size=64))
        assoc.release()
        assert refused.Status == 0xA700
        assert "spool full" in refused.ErrorComment
        done, temps = spool_files(node.spool_dir)
        assert len(done) == 1 and not temps
        assert pydicom.dcmread(done[0]).SOPInstanceUID == first.SOPInstanceUID
        assert node.spool.total_bytes == done[0].stat().st_size


def test_spool_removes_stale_temp_files_and_is_exclusive(tmp_path: Path) -> None:
    stale = tmp_path / "ab" / "cd" / f".x.1234{TEMP_SUFFIX}"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an instance")
    with Spool(tmp_path, max_bytes=1000) as spool:
        assert not stale.exists() and spool.total_bytes == 0
        with pytest.raises(PacsError, match="in use by another process"):
            Spool(tmp_path, max_bytes=1000)
        spool.store(b"abc", study_uid="../../x", series_uid="/etc", sop_uid="..")
        (path,) = spool_files(tmp_path)[0]
        assert path.is_relative_to(tmp_path) and ".." not in path.relative_to(tmp_path).parts
    with Spool(tmp_path, max_bytes=1000) as again:  # reopened: the study is found again, and quiet
        assert again.total_bytes == 3 and again.quiet_studies(0.0) == [study_key("../../x")]


# -- processing: failures are recorded, the listener carries on, processed studies leave the spool -----------------
def test_failing_study_is_recorded_and_listener_carries_on(tmp_path: Path) -> None:
    seen: list[str] = []
    ready = threading.Event()

    def on_study(study):
        seen.append(study.key)
        ready.set()
        if len(seen) == 1:
            raise ValueError("boom\nsecond line never shown")
        return None

    node = Listener(
        "CTLENS",
        0,
        tmp_path / "spool",
        results_dir=tmp_path / "results",
        allowed_ae_titles=[SCU_AET],
        host="127.0.0.1",
        quiet_seconds=0.3,
        on_study=on_study,
    )
    with node:
        studies = [generate_uid(), generate_uid()]
        for n, study in enumerate(studies, start=1):
            assoc = scu_associate(node.port)
            assert assoc.send_c_store(ct_slice(study, generate_uid())).Status == 0
            assoc.release()
            wait_for(lambda n=n: len(seen) == n, 20, "the study to be processed")
        wait_for(lambda: node.spool.studies() == {study_key(studies[0]): 1}, 10, "the processed study to leave")
    error = tmp_path / "results" / study_key(studies[0]) / "error.txt"
    assert error.read_text() == "ValueError: boom\n"
    assert not (tmp_path / "results" / study_key(studies[1]) / "error.txt").exists()


def test_default_processing_failure_writes_error_txt(tmp_path: Path) -> None:
    """A study the analysis cannot use (one 16x16 slice plus an SR) fails with a one-line reason."""
    events: list[str] = []
    node = Listener(
        "CTLENS",
        0,
        tmp_path / "spool",
        results_dir=tmp_path / "results",
        allowed_ae_titles=[SCU_AET],
        host="127.0.0.1",
        quiet_seconds=0.3,
        on_event=events.append,
    )
    study = generate_uid()
    with node:
        assoc = scu_associate(node.port, contexts=("1.2.840.10008.5.1.4.1.1.88.11",))
        from fake_instances import text_sr

        assert assoc.send_c_store(text_sr(study, generate_uid())).Status == 0
        assoc.release()
        error = tmp_path / "results" / study_key(study) / "error.txt"
        wait_for(error.is_file, 30, "error.txt")
    line = error.read_text()
    assert line.count("\n") == 1 and "Traceback" not in line
    assert any("failed" in e for e in events)
    assert node.spool_dir.joinpath(study_key(study)).is_dir()  # a failed study stays in the spool


# -- the command ------------------------------------------------------------------------------------------------
def test_cli_listen_runs_answers_echo_and_stops_on_sigint(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, CTLENS_LISTEN_ALLOWED_AE_TITLES="[]")
    command = [sys.executable, "-m", "ctlens", "listen", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--spool", str(tmp_path / "spool"), "--results", str(tmp_path / "results"), "--allow-ae", SCU_AET]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                echo(f"dicom://CTLENS@127.0.0.1:{port}", calling_ae=SCU_AET, timeout=2)
                break
            except PacsError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "ctlens listen did not answer C-ECHO within 60 s"
                time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert f"listening as CTLENS on 127.0.0.1:{port}" in output
    assert "Traceback" not in output
