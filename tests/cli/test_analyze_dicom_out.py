"""``ctlens analyze PATH --dicom-out DIR``: SEG and SR (and the heatmap SC) next to the summary; DICOM input only."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicom_results_checks import PATIENT, write_volume_series
from typer.testing import CliRunner

from ctlens.analysis import chest_phantom
from shared_data import data_dir


def _analyze(*args: str | Path):
    from ctlens.cli.main import app

    return CliRunner().invoke(app, ["analyze", *map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory) -> Path:
    vol, _ = chest_phantom(nodule_radius_mm=9.0)
    folder = tmp_path_factory.mktemp("ct") / "series"
    write_volume_series(vol, folder)
    return folder


def test_dicom_out_writes_seg_sr_and_sc(phantom_series, tmp_path) -> None:
    out = tmp_path / "dicom"
    result = _analyze(phantom_series, "--dicom-out", out, "--dicom-heatmap")
    assert result.exit_code == 0, result.output
    for name, modality in (("seg.dcm", "SEG"), ("sr.dcm", "SR"), ("sc.dcm", "OT")):
        assert f"wrote {out / name}" in result.output
        ds = pydicom.dcmread(out / name)
        assert ds.Modality == modality and ds.PatientID == PATIENT["PatientID"]
    assert sorted(p.name for p in out.iterdir()) == ["sc.dcm", "seg.dcm", "sr.dcm"]


def test_dicom_out_needs_dicom_input(tmp_path) -> None:
    result = _analyze(tmp_path / "scan.nii.gz", "--dicom-out", tmp_path / "dicom")
    assert result.exit_code == 2
    assert "--dicom-out needs a DICOM series, not a nifti file" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "dicom").exists()


@pytest.mark.shared_data
def test_dicom_out_on_the_real_series(tmp_path) -> None:
    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"
    result = _analyze(folder, "--dicom-out", tmp_path / "d")
    assert result.exit_code == 0, result.output
    assert (
        f"wrote {tmp_path / 'd' / 'seg.dcm'}" in result.output and f"wrote {tmp_path / 'd' / 'sr.dcm'}" in result.output
    )
    seg = pydicom.dcmread(tmp_path / "d" / "seg.dcm")
    assert [str(s.SegmentLabel) for s in seg.SegmentSequence][:3] == [
        "right lung",
        "left lung",
        "candidate 1 (mass, right)",
    ]
