"""``ctlens clip evaluate --split``: a malformed split JSON is one ``ctlens: error:`` line naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctlens.cli.cmd_clip import read_split
from ctlens.cli.main import app
from ctlens.core.errors import CorruptFileError


def _evaluate(tmp_path: Path, split: Path) -> object:
    missing = tmp_path / "never"  # nothing else is read before the split
    args = ["clip", "evaluate", "--checkpoint", str(missing), "--ct", str(missing), "--reports", str(missing)]
    args += ["--labels", str(missing), "--split", str(split), "--out", str(tmp_path / "out")]
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    ("content", "must"),
    [
        (b'{"val": ["a"]}', '"test"'),
        (b'{"test": ["a"]}', '"val"'),
        (b'{"test": "a", "val": ["b"]}', '"test"'),
        (b'{"test": [1], "val": ["b"]}', '"test"'),
        (b"[]", "object"),
        (b"{", "not a split JSON"),
        (b"\xff\xfe", "not a split JSON"),
        (b"[" * 100000, "split"),
    ],
)
def test_malformed_split_is_one_error_line(tmp_path: Path, content: bytes, must: str) -> None:
    split = tmp_path / "my-split.json"
    split.write_bytes(content)
    result = _evaluate(tmp_path, split)
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("ctlens: error: ")]
    assert len(errors) == 1 and "my-split.json" in errors[0] and must in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_valid_split_gives_its_lists(tmp_path: Path) -> None:
    split = tmp_path / "split.json"
    split.write_text('{"train": ["x"], "val": ["a"], "holdout": ["b", "c"]}')
    assert read_split(split, ("holdout", "val")) == {"holdout": ["b", "c"], "val": ["a"]}
    with pytest.raises(CorruptFileError, match="test"):
        read_split(split, ("test",))
