"""``ctlens compress`` streams DICOM folders/zips; the .ctz equals the in-memory path's, byte for byte.

The only bytes that may differ are the trailer's statistics (they hold the encode time) and the footer's CRCs over
them: everything before the trailer (prefix, header with geometry and de-identified meta, every slice stream, the
index) must be identical, and so must the decoded volume.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import PHI_VALUES, make_zip, truncate, write_ct_series
from typer.testing import CliRunner

from ctlens.cli.main import app
from ctlens.codec.container import FOOTER
from ctlens.codec.series import decode_volume, read_info
from ctlens.io.dicom_headers import dicom_folders
from shared_data import data_dir

CHILD = r"""
import json, sys
from ctlens.core.memory import peak_rss_kb
from ctlens.cli.main import app
import ctlens.codec.series, ctlens.io.dicom_stream, ctlens.io.dicom_reader, rich.progress
base = peak_rss_kb()
app(["compress", *sys.argv[1:]], standalone_mode=False)
print(json.dumps({"growth": (peak_rss_kb() - base) * 1024}))
"""
_NOT_TIMING = ("n_slices", "raw_bytes", "roi_coverage", "max_error", "mode", "backends", "inter_slices")


def _compress(src: Path, out: Path, *extra: str) -> None:
    res = CliRunner().invoke(app, ["compress", str(src), str(out), *extra])
    assert res.exit_code == 0, res.output
    assert "ratio" in res.output


def _assert_same_ctz(a: Path, b: Path) -> None:
    da, db = a.read_bytes(), b.read_bytes()
    fa, fb = FOOTER.unpack(da[-FOOTER.size :]), FOOTER.unpack(db[-FOOTER.size :])
    trailer_a, trailer_b = fa[4], fb[4]  # trailer_offset: everything before it is prefix, header, slices, index
    assert trailer_a == trailer_b
    assert da[:trailer_a] == db[:trailer_b]
    sa, sb = read_info(a)["stats"], read_info(b)["stats"]
    assert {k: sa[k] for k in _NOT_TIMING} == {k: sb[k] for k in _NOT_TIMING}
    va, vb = decode_volume(a), decode_volume(b)
    np.testing.assert_array_equal(va.array, vb.array)
    np.testing.assert_array_equal(va.affine, vb.affine)


@pytest.mark.parametrize("mode", ["lossless", "roi"])
def test_stream_and_in_memory_give_the_same_ctz(tmp_path: Path, mode: str) -> None:
    write_ct_series(tmp_path / "dcm", n_slices=20, rows=64, cols=48, shuffle_names=True, tilt_deg=8.0)
    _compress(tmp_path / "dcm", tmp_path / "s.ctz", "--mode", mode)
    _compress(tmp_path / "dcm", tmp_path / "m.ctz", "--mode", mode, "--in-memory")
    _assert_same_ctz(tmp_path / "s.ctz", tmp_path / "m.ctz")
    data = (tmp_path / "s.ctz").read_bytes()
    leaked = [v for v in PHI_VALUES if str(v).encode() in data]
    assert not leaked, f"patient identifiers in the .ctz: {leaked}"
    assert read_info(tmp_path / "s.ctz")["meta"]["tilt_corrected"] is True


def test_zip_streams_and_uneven_resample(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "dcm", rows=32, cols=32, positions=[0, 2.5, 5, 10, 12.5, 13.5, 16])
    zipped = make_zip(tmp_path / "dcm", tmp_path / "dcm.zip")
    _compress(zipped, tmp_path / "z.ctz", "--uneven", "resample")
    _compress(tmp_path / "dcm", tmp_path / "m.ctz", "--uneven", "resample", "--in-memory")
    a, b = read_info(tmp_path / "z.ctz"), read_info(tmp_path / "m.ctz")
    # the zip's member names differ from the folder's only in skipped-file notes (none here): same header
    assert a["meta"] == b["meta"] and a["meta"]["resampled_equidistant"]
    np.testing.assert_array_equal(decode_volume(tmp_path / "z.ctz").array, decode_volume(tmp_path / "m.ctz").array)


def test_bad_uneven_option_is_one_line_error(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "dcm", n_slices=3, rows=16, cols=16)
    res = CliRunner().invoke(app, ["compress", str(tmp_path / "dcm"), str(tmp_path / "x.ctz"), "--uneven", "nope"])
    assert res.exit_code != 0 and not (tmp_path / "x.ctz").exists()


def test_corrupt_slice_mid_stream_leaves_no_file(tmp_path: Path) -> None:
    truth = write_ct_series(tmp_path / "dcm", n_slices=6, rows=192, cols=192)  # pixel data beyond DEFER_BYTES
    truncate(truth.paths[3], 0.8)
    res = CliRunner().invoke(app, ["compress", str(tmp_path / "dcm"), str(tmp_path / "x.ctz")])
    assert res.exit_code == 2, res.output
    assert truth.paths[3].name in res.output and "truncated" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "x.ctz").exists() and not list(tmp_path.glob("*.ctz*"))


@pytest.mark.shared_data
def test_shared_lung_series_stream_equals_in_memory(tmp_path: Path) -> None:
    lung = [f for f in dicom_folders(data_dir()) if "Lung_Dx" in str(f)]
    if not lung:
        pytest.skip("Lung_Dx series not in the shared data")
    _compress(lung[0], tmp_path / "s.ctz")
    _compress(lung[0], tmp_path / "m.ctz", "--in-memory")
    _assert_same_ctz(tmp_path / "s.ctz", tmp_path / "m.ctz")
    data = (tmp_path / "s.ctz").read_bytes()
    assert b"Lung_Dx-A0002" not in data  # the patient id of the shared series stays out of the container


def _growth(*args: str) -> int:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["growth"]


def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    n, size = 300, 384
    write_ct_series(tmp_path / "dcm", n_slices=n, rows=size, cols=size, verify=False)
    raw = n * size * size * 2  # 88 MB
    streamed = _growth(str(tmp_path / "dcm"), str(tmp_path / "s.ctz"))
    in_memory = _growth(str(tmp_path / "dcm"), str(tmp_path / "m.ctz"), "--in-memory")
    assert in_memory > raw, f"the peer should hold the series: grew {in_memory / 1e6:.0f} MB for {raw / 1e6:.0f} MB"
    assert streamed < raw / 2, f"streaming grew by {streamed / 1e6:.0f} MB for {raw / 1e6:.0f} MB raw"


def test_compress_refuses_non_integer_images_and_writes_nothing(tmp_path: Path) -> None:
    import ctlens

    values = np.full((3, 8, 8), 40.5, np.float32)
    ctlens.save(ctlens.Volume(values, spacing=(2.0, 1.0, 1.0)), tmp_path / "frac.nii.gz")
    result = CliRunner().invoke(app, ["compress", str(tmp_path / "frac.nii.gz"), str(tmp_path / "frac.ctz")])
    assert result.exit_code != 0 and "integer samples" in " ".join(result.output.split())
    assert not (tmp_path / "frac.ctz").exists()
    whole = np.full((3, 8, 8), 40.0, np.float32)  # integer-valued floats are stored exactly
    ctlens.save(ctlens.Volume(whole, spacing=(2.0, 1.0, 1.0)), tmp_path / "whole.nii.gz")
    result = CliRunner().invoke(app, ["compress", str(tmp_path / "whole.nii.gz"), str(tmp_path / "whole.ctz")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "whole.ctz").stat().st_size > 0
