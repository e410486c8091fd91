"""The whole PACS round trip on a real Orthanc: C-STORE in, DICOMweb out, analyse, SEG + SR back, check them.

1. ``ctlens push`` stores the shared A0002 B40f series in Orthanc by C-STORE;
2. QIDO-RS finds it; ``ctlens.load("dicomweb+http://...")`` (WADO-RS) gives the same Volume as the files;
3. the Volume is analysed; SEG + SR are built from WADO-RS header-only metadata and sent back by STOW-RS;
4. they are retrieved from Orthanc again and checked: SEG frames sit on their source slices (per-frame
   positions), segments and labels match the findings, the SR's numbers equal the findings', dciodvfy finds no error.
Expected slice numbers come from the reader's own (hashed) SOP order, never from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_results_checks import check_seg, check_sr_candidates, check_sr_lungs, dciodvfy_errors, sr_groups
from typer.testing import CliRunner

import ctlens
from ctlens.analysis.analyze import analyze
from ctlens.cli.main import app
from ctlens.connect.results import dicom_results
from ctlens.io.dicomweb import DicomWebClient
from ctlens.io.uid_hash import hash_uid
from shared_data import data_dir

pytestmark = pytest.mark.shared_data


def _series_folder() -> Path:
    return data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"


def test_orthanc_round_trip(orthanc, tmp_path: Path) -> None:
    folder = _series_folder()
    headers = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir()) if p.is_file()}
    first = next(iter(headers.values()))
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)

    pushed = CliRunner().invoke(
        app, ["push", str(folder), "--to", f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"]
    )
    assert pushed.exit_code == 0, pushed.output
    assert len(orthanc.rest("/series?expand").json()[0]["Instances"]) == len(headers)

    client = DicomWebClient(orthanc.dicomweb, timeout=30, deadline=120)
    found = client.search_studies(study_uid=study)
    assert len(found) == 1
    assert client.search_studies(modality="CT") and not client.search_studies(accession="no-such-accession")

    pulled = ctlens.load("dicomweb+" + orthanc.dicomweb, study=study, series=series)
    local = ctlens.load(folder)
    assert np.array_equal(pulled.array, local.array)
    assert np.allclose(pulled.spacing, local.spacing) and np.allclose(pulled.origin, local.origin)
    assert np.allclose(pulled.direction, local.direction)
    assert pulled.meta["series_uid"] == local.meta["series_uid"] and pulled.meta["sop_uids"] == local.meta["sop_uids"]

    findings = analyze(pulled)
    assert findings.candidates, "the A0002 tumour series should give candidates"
    sources = client.series_metadata(study, series)
    assert len(sources) == len(headers)
    results = dicom_results(findings, pulled, sources)
    assert [ds.Modality for ds in results] == ["SEG", "SR"]
    client.store(results)

    back: dict[str, Path] = {}
    for ds in results:
        files = client.retrieve_series(study, str(ds.SeriesInstanceUID), tmp_path / str(ds.Modality))
        assert len(files) == 1
        back[str(ds.Modality)] = files[0]
        assert not dciodvfy_errors(files[0]), f"dciodvfy errors in the {ds.Modality} from Orthanc"

    order = pulled.meta["sop_uids"]
    slice_of = {str(h.SOPInstanceUID): order.index(hash_uid(str(h.SOPInstanceUID))) for h in headers.values()}
    ipps = {str(h.SOPInstanceUID): list(h.ImagePositionPatient) for h in headers.values()}
    seg = check_seg(back["SEG"], findings, pulled.shape, slice_of, ipps)
    assert str(seg.StudyInstanceUID) == study and str(seg.PatientID) == str(first.PatientID)

    sr = pydicom.dcmread(back["SR"])
    groups = sr_groups(sr)
    check_sr_candidates(groups, seg, findings)
    check_sr_lungs(groups, findings)
    evidence = {
        str(item.ReferencedSOPInstanceUID)
        for study_item in sr.CurrentRequestedProcedureEvidenceSequence
        for series_item in study_item.ReferencedSeriesSequence
        for item in series_item.ReferencedSOPSequence
    }
    assert set(slice_of) | {str(seg.SOPInstanceUID)} <= evidence
