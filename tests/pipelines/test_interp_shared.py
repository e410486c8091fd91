"""Slice interpolation on the real shared CTs: discovery, geometry on the tilted head CT, baselines ranked."""

from __future__ import annotations

import numpy as np
import pytest

import ctlens
from ctlens.pipelines.interp.evaluation import discover_cases, evaluate_array, ground_truth
from ctlens.pipelines.interp.interpolate import interpolate
from shared_data import data_dir

pytestmark = pytest.mark.shared_data


def test_every_shared_ct_becomes_a_case_and_mr_is_skipped() -> None:
    cases = discover_cases(data_dir())
    assert len(cases) >= 4
    names = " ".join(c.name for c in cases)
    assert "mr_3mm" not in names and "seg_3mm" not in names
    for case in cases:
        assert case.thin.shape[0] >= 9
        assert case.spacing[0] <= 1.5 * max(case.spacing[1:]) or case.axis == "z"


def test_tilted_head_ct_interpolates_with_exact_geometry() -> None:
    folder = data_dir() / "dcm_qa_ct_ge" / "dicom"
    if not folder.is_dir():
        pytest.skip("dcm_qa_ct_ge not in the shared data")
    vol = ctlens.load(folder, uneven="resample")
    out = interpolate(vol, spacing_z=1.0, method="cubic", progress=False)
    assert out.spacing[0] == 1.0 and out.shape[1:] == vol.shape[1:]
    np.testing.assert_allclose(out.world((0, 0, 0)), vol.world((0, 0, 0)), atol=1e-6)
    last = out.shape[0] - 1
    np.testing.assert_allclose(out.world((last, 5, 7)), vol.world((last / (vol.spacing[0] / 1.0), 5, 7)), atol=1e-6)


def test_cubic_beats_nearest_on_real_ct() -> None:
    path = data_dir() / "totalsegmentator_example" / "ct_3mm.nii.gz"
    if not path.is_file():
        pytest.skip("ct_3mm.nii.gz not in the shared data")
    case = ground_truth(ctlens.load(path), name="ct_3mm")
    rows = {r["method"]: r for r in evaluate_array(case.thin, 4, "drop", ["nearest", "cubic", "flow"], progress=False)}
    assert 25 < rows["nearest"]["psnr"] < rows["cubic"]["psnr"] < 60
    assert rows["flow"]["psnr"] > rows["nearest"]["psnr"]


def test_shared_cases_are_labelled_through_or_in_plane_and_one_study_is_one_unit() -> None:
    # issue 22 point 9: in-plane cases (a thick scan on its side) are told apart from through-plane ones,
    # and two series of one acquisition share a bootstrap unit
    cases = discover_cases(data_dir())
    for case in cases:
        if case.axis == "z":  # thin along z: the ground truth is the acquired slice axis
            assert case.spacing[0] <= 1.5 * max(case.spacing[1:])
        else:  # a thick scan on its side: its acquired slice axis is now axis 1 of the case
            assert case.axis == "x" and case.spacing[1] > 1.5 * max(case.spacing[0], case.spacing[2])
    assert any(c.axis == "z" for c in cases if c.name.endswith("ct_3mm.nii.gz"))
    lung = [c for c in cases if "Lung_Dx-A0002" in c.name]
    if len(lung) < 2:
        pytest.skip("the two Lung-PET-CT-Dx series are not in the shared data")
    assert len({c.group for c in lung}) == 1 and all(c.axis == "x" for c in lung)
    assert len({c.group for c in cases}) < len(cases)
