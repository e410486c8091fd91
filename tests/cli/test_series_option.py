"""``--series``: every command that reads a study takes it, and passes it the same way to the one selection rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dicom_factory as fac
import numpy as np
import pytest
from typer.testing import CliRunner

import ctlens
from ctlens.cli.main import app
from ctlens.cli.series import SERIES_HELP
from ctlens.core.errors import SeriesSelectionError
from ctlens.io import list_series
from ctlens.io.dicom_series import SeriesInfo, select_series
from shared_data import data_dir

STUDY_COMMANDS = [
    ["info"],
    ["convert"],
    ["analyze"],
    ["payload"],
    ["prepare"],
    ["compress"],
    ["interpolate"],
    ["clip", "zero-shot"],
]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "ctlens", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _series_line(stderr: str) -> str:
    """The reader's log line saying which series was picked (``ctlens -v``)."""
    lines = [line for line in stderr.splitlines() if "picked #" in line]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", STUDY_COMMANDS, ids=" ".join)
def test_every_study_command_has_the_same_series_option(command: list[str]) -> None:
    option = next(p for p in _click_command(command).params if p.name == "series")
    assert sorted(option.opts) == ["--series", "-s"]
    assert option.help == SERIES_HELP


def _click_command(path: list[str]):  # noqa: ANN202 - a click command
    import typer

    command = typer.main.get_command(app)
    ctx = command.make_context("ctlens", ["--help"], resilient_parsing=True)
    for name in path:
        command = command.get_command(ctx, name)
    return command


A0002_CASES = {
    "info": lambda d, out: ["info", d],
    "convert": lambda d, out: ["convert", d, out / "c.nii.gz"],
    "analyze": lambda d, out: ["analyze", d, "--out", out / "f.json"],
    "payload": lambda d, out: ["payload", d, "--budget", "6000", "--out", out / "p.json"],
    "prepare": lambda d, out: ["prepare", d, "--out", out / "prep"],
    "compress": lambda d, out: ["compress", d, out / "s.ctz"],
    "compress-in-memory": lambda d, out: ["compress", d, out / "m.ctz", "--in-memory"],
    "interpolate": lambda d, out: ["interpolate", d, out / "i.nii.gz", "--method", "linear", "--spacing", "4"],
}


def _a0002() -> Path:
    study = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002"
    if not study.is_dir():
        pytest.skip("Lung_Dx-A0002 not in the shared data")
    return study


@pytest.mark.shared_data
def test_info_numbers_the_b70f_series_1() -> None:
    listed = run_cli("info", _a0002())  # the numbering --series refers to
    assert listed.returncode == 0, listed.stderr
    b70f_row = next(line for line in listed.stdout.splitlines() if "B70f" in line and "CT" in line)
    assert b70f_row.split()[1] == "1", listed.stdout


@pytest.mark.shared_data
@pytest.mark.parametrize("case", sorted(A0002_CASES))
def test_series_1_picks_the_b70f_series_of_the_two_kernel_study(case: str, tmp_path: Path) -> None:
    study = _a0002()
    result = run_cli("-v", *A0002_CASES[case](study, tmp_path), "--series", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    picked = _series_line(result.stderr)
    assert "#1 " in picked and "B70f" in picked and picked.endswith("by index"), picked
    if case == "convert":  # the file holds the B70f pixels, not the B40f ones
        written = ctlens.load(tmp_path / "c.nii.gz").array
        assert np.array_equal(written, ctlens.load(study / "series_B70f_8mm").array)
        assert not np.array_equal(written, ctlens.load(study / "series_B40f_8mm").array)


@pytest.fixture(scope="module")
def digit_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small series; the bigger one (index 0) is described ``"1 mm lung"``: ``"1"`` is index and text."""
    folder = tmp_path_factory.mktemp("digits") / "study"
    fac.write_ct_series(folder, n_slices=8, rows=24, cols=24, description="1 mm lung", kernel="B70f")
    fac.write_ct_series(folder, n_slices=5, rows=24, cols=24, description="soft tissue", kernel="B40f", seed=2)
    return folder


@pytest.mark.parametrize(
    ("command", "selector", "kernel"),
    [
        (["convert"], "1", "B40f"),  # an index wins over a description holding the digit
        (["compress"], "1", "B40f"),
        (["interpolate", "--method", "linear", "--factor", "2"], "1", "B40f"),
        (["convert"], "lung", "B70f"),
        (["compress"], "b40F", "B40f"),  # the kernel, any case
    ],
)
def test_one_rule_for_every_command(digit_study: Path, tmp_path: Path, command, selector, kernel) -> None:
    out = tmp_path / ("out.ctz" if command[0] == "compress" else "out.nii.gz")
    result = CliRunner().invoke(app, ["-v", command[0], str(digit_study), str(out), *command[1:], "--series", selector])
    assert result.exit_code == 0, result.output
    assert f"kernel {kernel})" in _series_line(result.stderr)


def test_digits_that_are_no_index_are_matched_as_text(tmp_path: Path) -> None:
    fac.write_ct_series(tmp_path / "s", n_slices=6, rows=16, cols=16, description="123456 thin")
    fac.write_ct_series(tmp_path / "s", n_slices=4, rows=16, cols=16, description="other", seed=1)
    result = CliRunner().invoke(app, ["-v", "convert", str(tmp_path / "s"), str(tmp_path / "o.nii.gz"), "-s", "123456"])
    assert result.exit_code == 0, result.output
    assert "'thin'" in _series_line(result.stderr) and "by description" in result.stderr  # cleaned label (#13)


def _info(index: int, uid: str, description: str, kernel: str) -> SeriesInfo:
    return SeriesInfo(index, uid, "study", description, "CT", kernel, 10, 64, 64, "axial", 10, "")


def test_select_series_rule() -> None:
    infos = [_info(0, "1.2.840.1", "Thorax 1.0 B40f", "B40f"), _info(1, "1.2.840.2", "Thorax 1.0 B70f", "B70f")]
    picks = {sel: select_series(infos, sel, "study")[0].index for sel in ("0", "1", 1, "1.2.840.2", "B70F", "b40")}
    assert picks == {"0": 0, "1": 1, 1: 1, "1.2.840.2": 1, "B70F": 1, "b40": 0}
    for bad in ("2", 2, "Thorax", "nothing"):  # "2": no such index, then no description has it alone
        with pytest.raises(SeriesSelectionError):
            select_series(infos, bad, "study")


def test_series_on_a_single_volume_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "v.nii.gz"
    ctlens.save(ctlens.Volume(np.zeros((2, 4, 4), np.int16)), path)
    result = CliRunner().invoke(app, ["convert", str(path), str(tmp_path / "o.nii.gz"), "--series", "1"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ctlens: error: ")
    assert "v.nii.gz" in result.stderr and "--series" in result.stderr
    assert not (tmp_path / "o.nii.gz").exists()


@pytest.mark.shared_data
def test_clip_zero_shot_takes_series_too(tmp_path: Path) -> None:
    import torch

    from ctlens.models.clip3d import build_model, load_config
    from ctlens.models.clip3d.checkpoint import save_model_weights

    study = _a0002()
    torch.manual_seed(0)
    checkpoint = save_model_weights(build_model(load_config("ctclip-tiny")), tmp_path / "tiny-clip")
    args = ["-v", "clip", "zero-shot", str(study), "--checkpoint", str(checkpoint), "-f", "Emphysema", "--json"]
    result = CliRunner().invoke(app, [*args, "--series", "1"])
    assert result.exit_code == 0, result.output
    picked = _series_line(result.stderr)
    assert "#1 " in picked and "B70f" in picked and picked.endswith("by index"), picked
    assert '"Emphysema"' in result.stdout


def test_acquisitions_of_one_series_are_listed_and_picked_by_key(tmp_path: Path) -> None:
    positions = [[2.5 * k for k in range(6)], [2.5 * k - 5 for k in range(8)], [2.5 * k + 2.5 for k in range(5)]]
    truths = fac.write_acquisitions(tmp_path / "s", positions, rows=8, cols=8)
    infos = list_series(tmp_path / "s")
    listed = CliRunner().invoke(app, ["info", str(tmp_path / "s")], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    for info in infos:
        assert info.part in listed.stdout and info.series_id in listed.stdout
    runner = CliRunner()
    for a, truth in enumerate(truths):
        key = next(i.series_id for i in infos if i.part == f"acq {a + 1}")
        out = tmp_path / f"acq{a + 1}.nii.gz"
        result = runner.invoke(app, ["-v", "convert", str(tmp_path / "s"), str(out), "-s", key])
        assert result.exit_code == 0, result.output
        assert f"acq {a + 1}" in _series_line(result.stderr) and "by key" in result.stderr
        assert np.array_equal(ctlens.load(out).array, truth.hu)
    default = runner.invoke(app, ["convert", str(tmp_path / "s"), str(tmp_path / "d.nii.gz")])
    assert default.exit_code == 0, default.output
    assert "several acquisitions" in default.stderr and "acq 2" in default.stderr
    assert np.array_equal(ctlens.load(tmp_path / "d.nii.gz").array, truths[1].hu)  # the largest
