"""Geometry-correct by default: uneven spacing and missing slices are resampled so the volume spans the slices.

``uneven="keep"`` keeps the acquired slices (true positions in ``meta["slice_positions_mm"]``); a jitter below
1 % of the step is not uneven. The GE head CT of the shared data (tilted, 4 / 1.1 / 7 mm steps) is converted with
the CLI's defaults and its extent measured from its own headers.
"""

from __future__ import annotations

from pathlib import Path

import dicom_factory as fac
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

import ctlens
from ctlens.cli.main import app
from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume
from ctlens.io.dicom_stream import iter_series_slices
from shared_data import data_dir

OBLIQUE = (0.984808, 0.173648, 0.0, -0.173648, 0.984808, 0.0)
ORIENTATIONS = {"axial": fac.AXIAL, "coronal": fac.CORONAL, "sagittal": fac.SAGITTAL, "oblique": OBLIQUE}


def _extent(vol: Volume) -> float:
    """Distance from the first to the last slice centre of ``vol``, mm (along its normal)."""
    return float(np.linalg.norm(vol.world((vol.shape[0] - 1, 0, 0)) - vol.world((0, 0, 0))))


def _header_extent(paths: list[Path]) -> float:
    """First-to-last slice distance along the normal, from the files' own headers (pydicom only)."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    iop = np.array(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    along = [float(np.array(h.ImagePositionPatient, dtype=float) @ normal) for h in headers]
    return max(along) - min(along)


@pytest.mark.parametrize("name", list(ORIENTATIONS))
@pytest.mark.parametrize(
    "positions",
    [[0.0, 2.5, 5.0, 10.0, 12.5, 15.0, 17.5], [0.0, 2.5, 5.0, 6.0, 8.5, 11.0, 13.5], [20.0, 17.5, 15.0, 7.5, 5.0]],
    ids=["missing", "uneven", "descending_gap"],
)
def test_default_spans_the_slices(tmp_path: Path, name: str, positions: list[float]) -> None:
    truth = fac.write_ct_series(tmp_path, positions=positions, orientation=ORIENTATIONS[name], shuffle_names=True)
    vol = ctlens.load(tmp_path)
    assert _extent(vol) == pytest.approx(_header_extent(truth.paths), abs=1e-3)
    assert vol.meta["resampled_equidistant"] is True
    np.testing.assert_allclose(vol.origin, truth.origin, atol=1e-4)
    np.testing.assert_allclose(vol.direction, truth.direction, atol=1e-4)
    assert any("resampled" in w and "mm" in w for w in vol.meta["warnings"])
    # every acquired slice is where its headers put it: on the grid it is the slice itself, else between two
    along = (truth.ipps - truth.ipps[0]) @ truth.normal
    step = vol.spacing[0]
    for k, a in enumerate(along):
        z = a / step
        lo = int(np.floor(z + 1e-6))
        if abs(z - round(z)) < 1e-6:
            assert np.array_equal(vol.array[round(z)], truth.hu[k])
        else:  # linear along the normal between the two acquired neighbours of grid slice lo + 1
            g = (lo + 1) * step
            below, above = np.searchsorted(along, g) - 1, np.searchsorted(along, g)
            w = (g - along[below]) / (along[above] - along[below])
            expected = truth.hu[below] * (1 - w) + truth.hu[above].astype(np.float64) * w
            np.testing.assert_allclose(vol.array[lo + 1], np.rint(expected), atol=1)
    assert vol.meta["slice_positions_mm"] == pytest.approx(list(np.arange(vol.shape[0]) * step), abs=1e-6)
    assert vol.meta["source_slice_positions_mm"] == pytest.approx(list(along), abs=1e-4)


def test_missing_slice_default_and_keep(tmp_path: Path) -> None:
    positions = [0.0, 2.5, 5.0, 10.0, 12.5, 15.0, 17.5]
    truth = fac.write_ct_series(tmp_path, positions=positions)
    vol = ctlens.load(tmp_path)
    assert vol.shape[0] == 8 and vol.spacing[0] == pytest.approx(2.5)
    assert "7 unevenly spaced slices" in " ".join(vol.meta["warnings"])
    for policy in ("keep", "warn"):  # "warn": the former name
        kept = ctlens.load(tmp_path, uneven=policy)
        assert kept.shape == truth.shape and np.array_equal(kept.array, truth.hu)
        assert kept.meta["slice_positions_mm"] == pytest.approx(positions)
        assert "resampled_equidistant" not in kept.meta
        assert any("kept 7 unevenly spaced slices" in w for w in kept.meta["warnings"])


def test_jitter_is_not_resampled(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    positions = [k * 2.5 + float(rng.uniform(-0.02, 0.02)) for k in range(12)]  # < 1 % of the step
    truth = fac.write_ct_series(tmp_path, positions=positions)
    vol = ctlens.load(tmp_path)
    assert vol.shape == truth.shape and np.array_equal(vol.array, truth.hu)
    assert "resampled_equidistant" not in vol.meta and vol.meta["spacing_uneven"] is False
    assert not any("resampled" in w for w in vol.meta["warnings"])


def test_stream_default_equals_load(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path, positions=[0.0, 2.5, 5.0, 6.0, 8.5, 11.0], rows=8, cols=8)
    vol = ctlens.load(tmp_path)
    with iter_series_slices(tmp_path) as stream:
        assert stream.geometry.shape == vol.shape
        np.testing.assert_allclose(stream.geometry.affine, vol.affine, atol=1e-9)
        assert np.array_equal(np.stack(list(stream)), vol.array)


def test_unknown_policy_is_a_clear_error(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path, n_slices=3, rows=8, cols=8)
    with pytest.raises(CTLensError, match="uneven='sometimes' is not a policy") as err:
        ctlens.load(tmp_path, uneven="sometimes")
    assert tmp_path.name in str(err.value)


def test_convert_cli_default_and_keep(tmp_path: Path) -> None:
    truth = fac.write_ct_series(tmp_path / "dcm", positions=[0.0, 2.5, 5.0, 10.0, 12.5], rows=8, cols=8)
    runner = CliRunner()
    for extra, n in (([], 6), (["--uneven", "keep"], 5)):
        out = tmp_path / f"out{len(extra)}.nii.gz"
        res = runner.invoke(app, ["convert", str(tmp_path / "dcm"), str(out), *extra])
        assert res.exit_code == 0, res.output
        back = ctlens.load(out)
        assert back.shape[0] == n
        if n == 6:
            assert _extent(back) == pytest.approx(_header_extent(truth.paths), abs=1e-3)


@pytest.mark.shared_data
def test_ge_head_ct_spans_its_slices_with_defaults(tmp_path: Path) -> None:
    folder = data_dir() / "dcm_qa_ct_ge" / "dicom"
    if not folder.is_dir():
        pytest.skip("dcm_qa_ct_ge not in the shared data")
    true_extent = _header_extent(sorted(folder.iterdir()))
    out = tmp_path / "out.nii.gz"
    res = CliRunner().invoke(app, ["convert", str(folder), str(out)])
    assert res.exit_code == 0, res.output
    for vol in (ctlens.load(out), ctlens.load(folder)):
        assert _extent(vol) == pytest.approx(true_extent, abs=0.01)
    loaded = ctlens.load(folder)
    assert loaded.meta["resampled_equidistant"] is True
    assert any("resampled 28 unevenly spaced slices" in w for w in loaded.meta["warnings"])
    kept = ctlens.load(folder, uneven="keep")
    assert kept.shape[0] == 28 and kept.meta["slice_positions_mm"][-1] == pytest.approx(true_extent, abs=1e-3)
