"""``ctlens compress`` / ``ctlens decompress`` on a synthetic DICOM series, and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dicom_factory import write_ct_series
from typer.testing import CliRunner

import ctlens
from ctlens.cli.main import app


def test_compress_decompress_round_trip(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "dcm", n_slices=6, rows=48, cols=40)
    src = ctlens.load(tmp_path / "dcm")
    runner = CliRunner()
    res = runner.invoke(app, ["compress", str(tmp_path / "dcm"), str(tmp_path / "s.ctz")])
    assert res.exit_code == 0, res.output
    assert "ratio" in res.output
    res = runner.invoke(app, ["decompress", str(tmp_path / "s.ctz"), str(tmp_path / "s.nii.gz")])
    assert res.exit_code == 0, res.output
    back = ctlens.load(tmp_path / "s.nii.gz")
    np.testing.assert_array_equal(back.array, src.array)
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-4)
    res = runner.invoke(
        app, ["compress", str(tmp_path / "dcm"), str(tmp_path / "r.ctz"), "--mode", "roi", "--max-error", "3"]
    )
    assert res.exit_code == 0, res.output
    from ctlens.codec import decode_volume

    assert np.abs(decode_volume(tmp_path / "r.ctz").array.astype(int) - src.array).max() <= 3


def test_corrupt_input_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ctz"
    bad.write_bytes(b"not a ctz file at all, just text" * 4)
    res = CliRunner().invoke(app, ["decompress", str(bad), str(tmp_path / "o.nii.gz")])
    assert res.exit_code == 2
    assert "bad.ctz" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.nii.gz").exists()


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "dcm", n_slices=2, rows=16, cols=16)
    runner = CliRunner()
    for extra in (["--mode", "roi", "--max-error", "200"], ["--mode", "jpeg"], ["--profile", "tiny"]):
        res = runner.invoke(app, ["compress", str(tmp_path / "dcm"), str(tmp_path / "o.ctz"), *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert not isinstance(res.exception, ValueError)
    assert not (tmp_path / "o.ctz").exists()
