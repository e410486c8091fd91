"""Long steps report progress: a rich bar on a terminal (stderr), one final line when stderr is not a terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import ctlens
from ctlens.cli.main import app
from ctlens.cli.progress import progress_step

FINAL = re.compile(r"^ctlens: (?P<title>.+): done in (?P<seconds>\d+\.\d) s(?: \((?P<what>.*)\))?$")


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 x 40 x 40 CT with 4 mm slices (a disc of soft tissue in air)."""
    rng = np.random.default_rng(0)
    _, y, x = np.mgrid[:6, :40, :40]
    hu = np.where((y - 20) ** 2 + (x - 20) ** 2 < 150, 40.0, -1000.0) + rng.normal(0, 20, (6, 40, 40))
    path = tmp_path_factory.mktemp("ct") / "small.nii.gz"
    ctlens.save(ctlens.Volume(hu.astype(np.int16), spacing=(4.0, 1.0, 1.0)), path)
    return path


def _final_lines(stderr: str) -> list[re.Match[str]]:
    return [m for m in map(FINAL.match, stderr.splitlines()) if m]


def test_helper_is_quiet_off_a_terminal_except_for_the_final_line() -> None:
    out = io.StringIO()
    with progress_step("training", console=Console(file=out, width=100)) as progress:
        progress.describe("self-supervised training")
        for step in range(1, 51):
            progress(step, 50)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "\x1b" not in lines[0]
    match = FINAL.match(lines[0])
    assert match and match["title"] == "training" and match["what"] == "self-supervised training 50/50"


def test_helper_draws_a_bar_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress_step("HDF5 export", console=console) as progress:
        progress.describe("a.nii.gz")
        progress(3, 8)
        console.file.flush()
        progress._bar.refresh()  # what the refresh thread draws 10 times a second
    drawn = out.getvalue()
    assert "HDF5 export: a.nii.gz" in drawn and "3/8" in drawn and "━" in drawn
    assert drawn.rstrip().splitlines()[-1].endswith("done in 0.0 s (a.nii.gz 3/8)")


def test_helper_prints_nothing_more_when_the_step_fails() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError), progress_step("analysis", console=Console(file=out)):
        raise ValueError("bad input")
    assert out.getvalue() == ""


def _run_on_a_terminal(args: list[str], timeout: float = 180) -> str:
    """Run ``python -m ctlens ARGS`` with stdout and stderr on a pseudo-terminal; everything it drew."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "ctlens", *args], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("no output for too long")
        try:
            data = os.read(master, 65536)
        except OSError:  # the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


def test_self_supervised_interpolation_shows_its_training_on_a_terminal(small_ct: Path, tmp_path: Path) -> None:
    out = tmp_path / "thin.nii.gz"
    args = ["interpolate", str(small_ct), str(out), "--method", "self_supervised", "--steps", "3", "--factor", "4"]
    drawn = _run_on_a_terminal(args)
    assert "self_supervised interpolation of small.nii.gz: self-supervised training" in drawn
    assert "\x1b[" in drawn  # drawn as a live display
    assert "ctlens: self_supervised interpolation of small.nii.gz: done in" in drawn
    assert out.is_file()


def test_self_supervised_interpolation_reports_one_final_line_off_a_terminal(small_ct: Path, tmp_path: Path) -> None:
    args = ["interpolate", str(small_ct), str(tmp_path / "t.nii.gz"), "--method", "self_supervised"]
    result = CliRunner().invoke(app, [*args, "--steps", "1", "--factor", "2"])
    assert result.exit_code == 0, result.output
    assert [m["title"] for m in _final_lines(result.stderr)] == ["self_supervised interpolation of small.nii.gz"]
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr


def test_vae_training_reports_its_steps(small_ct: Path, tmp_path: Path) -> None:
    config = tmp_path / "vae.yaml"
    config.write_text(
        f"""
data: {{paths: ["{small_ct}"], factor: 2, depth: 4, patch: 32, simulation: slab, axis: z, slices_per_item: 2}}
model:
  vae: {{channels: [4, 8, 8, 8], num_res_blocks: 1, norm_num_groups: 4, latent_channels: 4}}
train: {{out_dir: "{tmp_path / "vae"}", steps: 2, batch_size: 1, lr: 0.001, save_every: 2, val_every: 0}}
"""
    )
    result = CliRunner().invoke(app, ["interp", "train-vae", "--config", str(config)])
    assert result.exit_code == 0, result.output
    (line,) = _final_lines(result.stderr)
    assert line["title"] == "VAE training" and line["what"] == "training vae 2/2"


def test_cache_build_and_hdf5_export_report_each_input(small_ct: Path, tmp_path: Path) -> None:
    for study in ("s1", "s2"):
        (tmp_path / "data" / "raw" / study).mkdir(parents=True)
        (tmp_path / "data" / "raw" / study / "ct.nii.gz").write_bytes(small_ct.read_bytes())
    cache = CliRunner().invoke(app, ["cache", "build", str(tmp_path / "data"), "--workers", "1"])
    assert cache.exit_code == 0, cache.output
    (line,) = _final_lines(cache.stderr)
    assert line["title"] == "cache of data" and line["what"].endswith(" 2/2")
    args = ["preprocess-h5", "-i", str(tmp_path / "data" / "raw"), "-o", str(tmp_path / "v.h5")]
    export = CliRunner().invoke(app, [*args, "--num-workers", "0", "--target-shape", "8", "16", "16"])
    assert export.exit_code == 0, export.output
    (line,) = _final_lines(export.stderr)
    assert line["title"] == "HDF5 export to v.h5" and line["what"].endswith(" 2/2")


def test_analyze_and_compress_report_their_steps(small_ct: Path, tmp_path: Path) -> None:
    analysed = CliRunner().invoke(app, ["analyze", str(small_ct), "--out", str(tmp_path / "f.json")])
    assert analysed.exit_code == 0, analysed.output
    assert [m["title"] for m in _final_lines(analysed.stderr)] == ["analysis of small.nii.gz"]
    packed = CliRunner().invoke(app, ["compress", str(small_ct), str(tmp_path / "s.ctz")])
    assert packed.exit_code == 0, packed.output
    (line,) = _final_lines(packed.stderr)
    assert line["title"] == "compress small.nii.gz" and line["what"] == "compress s.ctz 6/6"
