"""Issue #13, PHI: a series whose free-text and private header fields carry a marker leaves it nowhere.

A real service on 127.0.0.1 receives two DICOM series (synthetic, tests/io/dicom_factory.py) whose every free-text
field (descriptions, protocol, comments, contrast agent), identifying field and private tag holds ``PHIMARKER``.
The marker must not appear in any answer (studies, payload, chat, exports), in what reaches the (fake) LLM, in the
logs, in any file under the service folder (SQLite and its WAL included, before and after DELETE), nor in a
``.ctz`` from ``ctlens compress`` or an HDF5 export of the same files. Series selection by a description word
that the cleaned descriptor drops still works (it runs on the raw headers).
"""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
from pathlib import Path

import dicom_factory
import pydicom
import pytest
from fake_llm import start_fake
from live_server import service_settings, start_server
from pydantic import SecretStr

MARKER = "PHIMARKER"
STUDY_UID = "1.2.826.0.1.3680043.8.498.7301"
FREE_TEXT = {
    "StudyDescription": f"CT CHEST {MARKER}",
    "ProtocolName": f"{MARKER} THORAX ROUTINE",
    "ImageComments": f"scanned by {MARKER}",
    "StudyComments": f"{MARKER} study comment",
    "AcquisitionComments": f"{MARKER} acquisition",
    "PatientComments": f"{MARKER} patient comment",
    "AdditionalPatientHistory": f"{MARKER} history",
    "ContrastBolusAgent": f"IV CONTRAST {MARKER}",
    "DerivationDescription": f"{MARKER} derived",
    "PerformedProcedureStepDescription": f"{MARKER} CT CHEST",
    "RequestedProcedureDescription": f"{MARKER} chest",
    "InstitutionName": f"{MARKER} Hospital",
    "PatientName": f"{MARKER}^Jane",
    "PatientID": f"{MARKER}-001",
    "AccessionNumber": f"{MARKER[:8]}1",
    "ReferringPhysicianName": f"{MARKER}^Referrer",
    "OperatorsName": f"{MARKER}^Operator",
    "StationName": MARKER[:16],
}


def _mark(path: Path, description: str) -> None:
    """Put the marker in every free-text, identifying and private field of one file."""
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = description
    for keyword, value in FREE_TEXT.items():
        setattr(ds, keyword, value)
    block = ds.private_block(0x0029, "PHI TEST CREATOR", create=True)
    block.add_new(0x10, "LO", f"{MARKER} private")
    block.add_new(0x11, "LT", f"private note {MARKER}")
    ds.save_as(path, enforce_file_format=True)


def _phi_series(root: Path) -> list[Path]:
    paths = []
    for i, word in enumerate(("alpha", "bravo")):  # words the cleaned descriptor drops
        truth = dicom_factory.write_ct_series(
            root / word,
            n_slices=10,
            rows=48,
            cols=48,
            study_uid=STUDY_UID,
            series_uid=f"1.2.826.0.1.3680043.8.498.73{i + 10}",
            description="x",
            kernel=("B30f", "B70f")[i],
            series_number=i + 1,
            seed=i,
        )
        for path in truth.paths:
            _mark(path, f"{MARKER} CHEST {word} 1.25MM {MARKER}^Jane")
        paths += truth.paths
    raw = b"".join(p.read_bytes() for p in paths)
    assert raw.count(MARKER.encode()) >= len(paths) * (len(FREE_TEXT) + 3)  # the input really carries the marker
    return paths


def _clean(data: bytes | str, where: str) -> None:
    text = data.lower() if isinstance(data, bytes) else data.lower().encode()
    assert MARKER.lower().encode() not in text, f"{MARKER} found in {where}"


def _files_clean(root: Path) -> int:
    n = 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            _clean(data, str(path.relative_to(root)))
            if path.suffix == ".gz":
                _clean(gzip.decompress(data), str(path.relative_to(root)) + " (decompressed)")
            n += 1
    return n


@pytest.fixture
def phi_server(tmp_path):
    srv = start_server(service_settings(tmp_path / "service"))
    fake = start_fake("anthropic")
    srv.ctx.settings.anthropic_api_key = SecretStr("sk-ant-fake")
    srv.ctx.settings.anthropic_base_url = fake.base_url
    yield srv, fake
    fake.stop()
    srv.stop()


def test_no_phi_marker_in_answers_files_exports_or_logs(phi_server, tmp_path, caplog):
    from ctlens.codec.series import read_info

    caplog.set_level(logging.DEBUG)
    srv, fake = phi_server
    paths = _phi_series(tmp_path / "in")
    files = [("files", (f"{i:03d}.dcm", p.read_bytes(), "application/dicom")) for i, p in enumerate(paths)]
    client = srv.client()
    r = client.post("/api/analyze", files=files, data={"series": "bravo"})
    assert r.status_code == 200, r.text
    study = r.json()
    _clean(r.content, "POST /api/analyze")
    # selection by a description word worked on the raw headers; the table shows cleaned descriptors and kernels
    rows = {row["kernel"]: row for row in study["series"]}
    assert rows["B70f"]["analysed"] and not rows["B30f"]["analysed"]
    assert rows["B70f"]["description"] == "CHEST 1.25MM" and rows["B30f"]["description"] == "CHEST 1.25MM"
    assert study["facts"]["kernel"] == "B70f" and study["facts"]["slice_thickness"] > 0
    assert "CHEST 1.25MM" in study["facts"]["series_selection"]
    sid = study["id"]
    answers = {
        "list": client.get("/api/studies"),
        "study": client.get(f"/api/studies/{sid}"),
        "payload": client.get(f"/api/studies/{sid}/payload"),
        "chat": client.post("/api/chat", data={"message": "Any nodule?", "study_id": sid, "provider": "anthropic"}),
        "volume": client.get(f"/api/studies/{sid}/volume.nii.gz"),
        "ctz": client.get(f"/api/studies/{sid}/compressed.ctz"),
        "no-match": client.post("/api/analyze", files=files, data={"series": "charlie"}),
    }
    assert answers["no-match"].status_code == 422 and "CHEST 1.25MM" in answers["no-match"].text
    for name, answer in answers.items():
        assert answer.status_code in (200, 422), (name, answer.text[:300])
        _clean(answer.content, f"the {name} answer")
    _clean(gzip.decompress(answers["volume"].content), "the volume.nii.gz answer (decompressed)")
    service_ctz = tmp_path / "service.ctz"
    service_ctz.write_bytes(answers["ctz"].content)
    _clean(json.dumps(read_info(service_ctz), default=str), "the service's .ctz header")
    assert fake.requests, "the chat reached the fake LLM"
    for request in fake.requests:
        _clean(request.body, "the LLM request")
    root = srv.ctx.root
    assert _files_clean(root) >= 4  # the database, the stored volume, result.json, meta.json at least
    assert client.delete(f"/api/studies/{sid}").status_code == 204
    assert not list((root / "content").iterdir())
    wal = root / "ctlens.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated after the delete
    _files_clean(root)
    _clean("\n".join(line for line in caplog.text.splitlines() if "phimarker" in line.lower()), "the logs")
    # the same files through the command line: ctlens compress and an HDF5 export
    folder = tmp_path / "in" / "bravo"
    ctz = tmp_path / "cli.ctz"
    ctlens = str(Path(sys.executable).with_name("ctlens"))
    done = subprocess.run([ctlens, "compress", str(folder), str(ctz)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    _clean(ctz.read_bytes(), "the ctlens compress .ctz")
    _clean(json.dumps(read_info(ctz), default=str), "the ctlens compress .ctz header")
    _clean(done.stdout + done.stderr, "ctlens compress's output")


def test_no_phi_marker_in_hdf5_export(tmp_path):
    pytest.importorskip("h5py")
    from ctlens.cache.hdf5_export import export_hdf5

    _phi_series(tmp_path / "in")
    out = tmp_path / "out" / "v.h5"
    out.parent.mkdir()
    csv = tmp_path / "out" / "meta.csv"
    report = export_hdf5(tmp_path / "in", out, csv, target_shape=(8, 16, 16), num_workers=0, progress=False)
    assert report.written, report
    for path in (out, csv):
        _clean(path.read_bytes(), path.name)


def test_zip_member_names_never_reach_answers_or_files(phi_server, tmp_path):
    """Folder and file names inside a zip can carry patient names; a member the reader skips is named by number."""
    import io
    import zipfile

    srv, _ = phi_server
    truth = dicom_factory.write_ct_series(tmp_path / "zip", n_slices=8, rows=32, cols=32, seed=3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, path in enumerate(truth.paths):
            archive.writestr(f"{MARKER}^JANE/{MARKER}_{i:03d}.dcm", path.read_bytes())
        broken = truth.paths[0].read_bytes()[:600]  # DICM preamble and header, pixel data cut off
        archive.writestr(f"{MARKER}^JANE/{MARKER}_broken.dcm", broken)
    upload = [("files", ("study.zip", buffer.getvalue(), "application/zip"))]
    r = srv.client().post("/api/analyze", files=upload)
    assert r.status_code == 200, r.text
    _clean(r.content, "POST /api/analyze of a zip")
    _files_clean(srv.ctx.root)
