"""`ctlens.connect.dicom_node` and `ctlens push`: peer addresses, C-ECHO and C-STORE against a real Orthanc and
small in-test pynetdicom SCPs (one that accepts only uncompressed syntaxes, one that aborts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_instances import BASIC_TEXT_SR, ct_slice, text_sr
from pydicom.uid import RLELossless, generate_uid
from typer.testing import CliRunner

from ctlens.cli.main import app
from ctlens.connect.dicom_node import DicomPeer, dicom_files, echo, parse_peer, send_instances
from ctlens.core.errors import PacsError
from ports import free_port
from shared_data import data_dir

pynetdicom = pytest.importorskip("pynetdicom")


# -- addresses --------------------------------------------------------------------------------------------------
def test_parse_peer_accepts_the_documented_forms() -> None:
    assert parse_peer("dicom://ORTHANC@127.0.0.1:4242") == DicomPeer("ORTHANC", "127.0.0.1", 4242)
    assert parse_peer("DICOM://PACS@pacs.example.org?calling=ME") == DicomPeer("PACS", "pacs.example.org", 104, "ME")
    assert parse_peer("dicom://MY%20PACS@[::1]:11112").ae_title == "MY PACS"
    assert parse_peer("dicom://A@h:5").url == "dicom://A@h:5"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("http://PACS@host:104", "not a dicom:// address"),
        ("dicom://host:104", "no called AE title"),
        ("dicom://PACS:hunter2@host:104", "carries no password"),
        ("dicom://PACS@host:0", "not a valid TCP port"),
        ("dicom://PACS@host:99999", "not a valid dicom:// address"),
        ("dicom://PACS@host:104?user=x", "unknown option"),
        ("dicom://WAY_TOO_LONG_AE_TITLE@host:104", "invalid called AE title"),
        ("dicom://PACS@host:104/path", "has no path"),
    ],
)
def test_parse_peer_refuses_bad_addresses_in_one_line(address: str, reason: str) -> None:
    with pytest.raises(PacsError, match=reason) as caught:
        parse_peer(address)
    assert "\n" not in str(caught.value) and "hunter2" not in str(caught.value)


def test_dicom_files_expands_folders_and_skips_non_dicom(tmp_path: Path) -> None:
    study = generate_uid()
    (tmp_path / "sub").mkdir()
    ct_slice(study, generate_uid()).save_as(tmp_path / "sub" / "a.dcm", enforce_file_format=True)
    (tmp_path / "README.txt").write_text("notes")
    (tmp_path / ".hidden.dcm").write_bytes(bytes(128) + b"DICM")
    assert [p.name for p in dicom_files([tmp_path])] == ["a.dcm"]
    with pytest.raises(PacsError, match="no such file"):
        dicom_files([tmp_path / "missing"])


# -- against the real Orthanc -------------------------------------------------------------------------------------
def test_echo_and_store_mixed_sop_classes_and_syntaxes(orthanc) -> None:
    peer = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}?calling=CTLENSTEST"
    assert 0 < echo(peer) < 5
    before = len(orthanc.rest("/instances").json())
    study, series = generate_uid(), generate_uid()
    rle = ct_slice(study, series, 1)
    rle.compress(RLELossless)
    items = [ct_slice(study, series, 0), rle, text_sr(study, generate_uid())]
    summary = send_instances(items, peer)
    assert (summary.sent, summary.failed, summary.total) == (3, 0, 3)
    assert len(orthanc.rest("/instances").json()) == before + 3
    stored = orthanc.rest(f"/instances/{_orthanc_id(orthanc, rle.SOPInstanceUID)}/metadata/TransferSyntax").text
    assert stored == RLELossless  # sent in its own syntax: a context was proposed for it


def _orthanc_id(orthanc, sop_uid: str) -> str:
    import httpx

    found = httpx.post(
        orthanc.url + "/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}, timeout=30
    ).json()
    assert len(found) == 1
    return found[0]


@pytest.mark.shared_data
def test_push_cli_sends_the_series_to_orthanc(orthanc) -> None:
    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"
    before = {i for i in orthanc.rest("/instances").json()}
    result = CliRunner().invoke(app, ["push", str(folder), "--to", f"dicom://ORTHANC@127.0.0.1:{orthanc.dicom_port}"])
    assert result.exit_code == 0, result.output
    assert "sent 30 of 30 instance(s) to ORTHANC@127.0.0.1" in result.output
    new = set(orthanc.rest("/instances").json()) - before
    assert len(new) == 30


def test_push_cli_stow_rs_to_orthanc_dicomweb(orthanc, tmp_path: Path) -> None:
    study = generate_uid()
    for i in range(2):
        ct_slice(study, generate_uid(), i).save_as(tmp_path / f"{i}.dcm", enforce_file_format=True)
    result = CliRunner().invoke(app, ["push", str(tmp_path), "--to", orthanc.dicomweb])
    assert result.exit_code == 0, result.output
    assert "stored 2 instance(s)" in result.output and "STOW-RS" in result.output
    assert len(orthanc.rest(f"/studies/{_orthanc_study(orthanc, study)}/instances").json()) == 2


def _orthanc_study(orthanc, study_uid: str) -> str:
    import httpx

    found = httpx.post(
        orthanc.url + "/tools/find", json={"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}, timeout=30
    ).json()
    assert len(found) == 1
    return found[0]


def test_push_to_a_closed_port_is_one_line_error(tmp_path: Path) -> None:
    ct_slice(generate_uid(), generate_uid()).save_as(tmp_path / "a.dcm", enforce_file_format=True)
    port = free_port()
    result = CliRunner().invoke(app, ["push", str(tmp_path), "--to", f"dicom://PACS@127.0.0.1:{port}"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ctlens: error: PACS@127.0.0.1:")
    assert "no association" in lines[0] and "Traceback" not in result.output


# -- small SCPs with awkward behaviour ---------------------------------------------------------------------------
@pytest.fixture
def uncompressed_only_scp() -> Iterator[tuple[int, list]]:
    """A pynetdicom SCP accepting CT and SR only in uncompressed syntaxes; the last one refuses with 0xA700."""
    received: list = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0xA700 if ds.get("InstanceNumber") == 99 else 0x0000

    ae = pynetdicom.AE("STRICT")
    ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2")  # CT, default (uncompressed) syntaxes
    ae.add_supported_context(BASIC_TEXT_SR)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    yield server.server_address[1], received
    ae.shutdown()


def test_compressed_instance_is_decompressed_when_the_peer_takes_only_uncompressed(uncompressed_only_scp) -> None:
    port, received = uncompressed_only_scp
    study, series = generate_uid(), generate_uid()
    rle = ct_slice(study, series, 1)
    pixels = rle.pixel_array.copy()
    rle.compress(RLELossless)
    summary = send_instances([rle, text_sr(study, series)], f"dicom://STRICT@127.0.0.1:{port}", calling_ae="ME")
    assert summary.sent == 2
    got = received[0]
    assert not got.file_meta.TransferSyntaxUID.is_compressed
    assert (got.pixel_array == pixels).all()
    assert rle.file_meta.TransferSyntaxUID == RLELossless  # the caller's dataset is left as it was


def test_refused_and_unsupported_instances_raise_with_counts(uncompressed_only_scp, tmp_path: Path) -> None:
    port, _ = uncompressed_only_scp
    study, series = generate_uid(), generate_uid()
    refused = ct_slice(study, series, 98)
    refused.InstanceNumber = 99
    mr = ct_slice(study, series, 2)
    mr.SOPClassUID = mr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR: not supported there
    mr.save_as(tmp_path / "mr.dcm", enforce_file_format=True)
    with pytest.raises(PacsError) as caught:
        send_instances([ct_slice(study, series, 0), refused, tmp_path / "mr.dcm"], f"dicom://STRICT@127.0.0.1:{port}")
    message = str(caught.value)
    assert "2 of 3 instance(s) refused, 1 sent" in message and "STRICT@127.0.0.1" in message
    assert "status 0xA700" in message and "\n" not in message
    assert caught.value.summary.failed == 2


def test_peer_abort_mid_transfer_is_reported(tmp_path: Path) -> None:
    count = {"n": 0}

    def on_store(event):
        count["n"] += 1
        if count["n"] == 2:
            threading.Thread(target=event.assoc.abort).start()  # the peer gives up during the second instance
            time.sleep(1.0)  # (the abort goes out before any answer)
            return 0xA700
        return 0x0000

    ae = pynetdicom.AE("FLAKY")
    ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2")
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    try:
        study, series = generate_uid(), generate_uid()
        items = [ct_slice(study, series, i, size=128) for i in range(5)]
        with pytest.raises(PacsError, match="C-STORE aborted: the association ended after 1 of 5") as caught:
            send_instances(items, f"dicom://FLAKY@127.0.0.1:{server.server_address[1]}", timeout=10)
        assert "of 5 instance(s)" in str(caught.value) and "FLAKY@127.0.0.1" in str(caught.value)
        assert caught.value.summary.sent == 1
    finally:
        ae.shutdown()


def test_rejected_association_names_the_peer_and_reason() -> None:
    ae = pynetdicom.AE("PICKY")
    ae.add_supported_context("1.2.840.10008.1.1")
    ae.require_calling_aet = ["FRIEND"]
    server = ae.start_server(("127.0.0.1", 0), block=False)
    try:
        with pytest.raises(PacsError, match="rejected: calling AE title not recognised") as caught:
            echo(f"dicom://PICKY@127.0.0.1:{server.server_address[1]}", calling_ae="STRANGER")
        assert "'STRANGER'" in str(caught.value)
    finally:
        ae.shutdown()


def test_unreadable_file_fails_before_any_association(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"this is not dicom")
    with pytest.raises(PacsError, match="bad.dcm"):
        send_instances([bad], "dicom://NOBODY@127.0.0.1:9")
