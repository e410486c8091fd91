"""``ctlens payload`` end to end on a synthetic DICOM series (JSON + preview written, errors on one line)."""

from __future__ import annotations

import json

from dicom_factory import write_ct_series
from PIL import Image
from typer.testing import CliRunner

from ctlens.cli.main import app


def test_payload_command(tmp_path) -> None:
    write_ct_series(tmp_path / "dcm", n_slices=5, rows=48, cols=48)
    out, preview = tmp_path / "p.json", tmp_path / "p.png"
    args = ["payload", str(tmp_path / "dcm"), "-q", "Any nodule?", "--provider", "openai", "--model", "gpt-4o"]
    result = CliRunner().invoke(app, [*args, "--budget", "3000", "--out", str(out), "--preview", str(preview)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["provider"] == "openai" and record["token_estimate"] <= 3000
    assert record["request"]["chat_completions"]["messages"][0]["content"][0]["type"] == "text"
    assert Image.open(preview).width > 0


def test_payload_command_errors_in_one_line(tmp_path) -> None:
    write_ct_series(tmp_path / "dcm", n_slices=3, rows=32, cols=32)
    out = tmp_path / "p.json"
    result = CliRunner().invoke(app, ["payload", str(tmp_path / "dcm"), "-q", "x", "--budget", "50", "--out", str(out)])
    assert result.exit_code == 2
    assert "ctlens: error:" in result.output and "Traceback" not in result.output
    assert not out.exists()
