"""The DICOMweb client, ``ctlens.load("dicomweb+http://...")`` and ``ctlens pull`` / ``search`` on a real Orthanc.

The shared A0002 B40f chest CT (30 slices) goes in with STOW-RS, is found with QIDO-RS and comes back with
WADO-RS; the volume read through the archive must equal the one read from the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from orthanc_server import Orthanc
from pydicom.uid import generate_uid
from typer.testing import CliRunner

import ctlens
from ctlens.core.errors import PacsError
from ctlens.io.dicomweb import DicomWebClient, dicom_json_value, pull_series
from shared_data import data_dir

pytestmark = pytest.mark.shared_data


@dataclass(frozen=True)
class Stored:
    folder: Path
    study: str
    series: str
    date: str
    sops: list[str]


@pytest.fixture(scope="module")
def stored(orthanc: Orthanc) -> Stored:
    """The B40f series stored into the module's Orthanc with STOW-RS."""
    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"
    files = sorted(folder.glob("*.dcm"))
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    result = DicomWebClient(orthanc.dicomweb).store(files)
    assert len(result["00081199"]["Value"]) == len(files) == 30  # ReferencedSOPSequence: all stored
    assert "00081198" not in result or not result["00081198"].get("Value")
    first = headers[0]
    return Stored(
        folder, first.StudyInstanceUID, first.SeriesInstanceUID, first.StudyDate, [h.SOPInstanceUID for h in headers]
    )


def test_qido_finds_the_study_by_uid_modality_and_date_but_not_a_wrong_accession(
    orthanc: Orthanc, stored: Stored
) -> None:
    client = DicomWebClient(orthanc.dicomweb)
    for query in ({"study_uid": stored.study}, {"modality": "CT"}, {"date": stored.date}):
        studies = client.search_studies(**query)
        assert [dicom_json_value(s, "StudyInstanceUID") for s in studies] == [stored.study], query
    (study,) = client.search_studies(date=f"{stored.date}-{stored.date}", modality="ct", limit=5)
    assert dicom_json_value(study, "NumberOfStudyRelatedInstances") == 30
    assert client.search_studies(accession="NO-SUCH-ACCESSION") == []
    assert client.search_studies(modality="MR") == []
    (series,) = client.search_series(stored.study, modality="CT")
    assert dicom_json_value(series, "SeriesInstanceUID") == stored.series
    instances = client.search_instances(stored.study, stored.series)
    assert sorted(dicom_json_value(i, "SOPInstanceUID") for i in instances) == sorted(stored.sops)


def test_retrieve_series_brings_back_the_30_instances(orthanc: Orthanc, stored: Stored, tmp_path: Path) -> None:
    files = DicomWebClient(orthanc.dicomweb).retrieve_series(stored.study, stored.series, tmp_path)
    assert len(files) == 30 and sorted(files) == sorted(tmp_path.iterdir())
    assert sorted(f.stem for f in files) == sorted(stored.sops)
    original = pydicom.dcmread(stored.folder / "1-01.dcm")
    copy = pydicom.dcmread(tmp_path / f"{original.SOPInstanceUID}.dcm")
    assert copy.PixelData == original.PixelData


def test_series_metadata_is_header_only_with_the_original_uids(orthanc: Orthanc, stored: Stored) -> None:
    datasets = DicomWebClient(orthanc.dicomweb).series_metadata(stored.study, stored.series)
    assert len(datasets) == 30
    assert sorted(ds.SOPInstanceUID for ds in datasets) == sorted(stored.sops)
    assert all("PixelData" not in ds and ds.Modality == "CT" for ds in datasets)
    assert {ds.SeriesInstanceUID for ds in datasets} == {stored.series}


def test_load_through_dicomweb_equals_load_from_the_folder(orthanc: Orthanc, stored: Stored) -> None:
    local = ctlens.load(stored.folder)
    for series in (stored.series, None):  # one series, then the whole study with the usual selection
        remote = ctlens.load("dicomweb+" + orthanc.dicomweb, study=stored.study, series=series)
        assert np.array_equal(remote.array, local.array)
        assert remote.array.dtype == local.array.dtype
        np.testing.assert_allclose(remote.spacing, local.spacing)
        np.testing.assert_allclose(remote.origin, local.origin)
        np.testing.assert_allclose(remote.direction, local.direction)
        assert remote.meta["series_uid"] == local.meta["series_uid"]


def test_load_from_a_missing_study_fails_cleanly(orthanc: Orthanc) -> None:
    with pytest.raises(PacsError, match="no such study/series \\(HTTP 404\\)"):
        ctlens.load("dicomweb+" + orthanc.dicomweb, study="1.2.3.4.5.6.7")
    with pytest.raises(ctlens.CTLensError, match="needs study="):
        ctlens.load("dicomweb+" + orthanc.dicomweb)


def test_pull_series_keeps_the_files(orthanc: Orthanc, stored: Stored, tmp_path: Path) -> None:
    dest = pull_series("dicomweb+" + orthanc.dicomweb, stored.study, stored.series, tmp_path / "kept")
    assert dest == tmp_path / "kept" and len(list(dest.glob("*.dcm"))) == 30


def test_store_a_dataset(orthanc: Orthanc, stored: Stored) -> None:
    ds = pydicom.dcmread(stored.folder / "1-01.dcm")
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality, ds.StudyDate = "OT", "19990101"  # kept out of the other tests' searches
    client = DicomWebClient(orthanc.dicomweb)
    client.store([ds])
    (found,) = client.search_studies(study_uid=ds.StudyInstanceUID)
    assert dicom_json_value(found, "NumberOfStudyRelatedInstances") == 1


def test_cli_pull_and_search(orthanc: Orthanc, stored: Stored, tmp_path: Path) -> None:
    from ctlens.cli.main import app

    runner = CliRunner()
    out = tmp_path / "pulled"
    args = ["pull", orthanc.dicomweb, "--study", stored.study, "--series", stored.series, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 30 instance(s)" in result.output and len(list(out.glob("*.dcm"))) == 30

    env = {"CTLENS_DICOMWEB_URL": orthanc.dicomweb, "COLUMNS": "200"}
    result = runner.invoke(app, ["search", "--modality", "CT", "--date", stored.date], env=env)
    assert result.exit_code == 0, result.output
    assert stored.study in result.output and "1 study" in result.output
    assert "Lung_Dx-A0002" not in result.output, "the table must not show the patient's name or ID"

    result = runner.invoke(app, ["search", "--accession", "NO-SUCH-ACCESSION"], env=env)
    assert result.exit_code == 0 and "0 studies" in result.output

    result = runner.invoke(app, ["pull", "--study", "1.2.3.4.5.6.7", "--out", str(tmp_path / "none")], env=env)
    assert result.exit_code == 2 and "HTTP 404" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "none").exists()
