"""atomic_output: nothing on error; on success bytes fsynced, renamed, then the folder's entries fsynced."""

from __future__ import annotations

import os
import stat

import pytest

from ctlens.core.errors import CTLensError
from ctlens.io.files import atomic_output


def test_success_syncs_files_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_output(tmp_path / "scan.mhd") as tmp:
        tmp.write_text("header")
        tmp.with_suffix(".raw").write_bytes(b"\0" * 8)
    assert events == [
        ("fsync", "file"),
        ("fsync", "file"),
        ("replace", "scan.raw"),  # companions first, the named file last
        ("replace", "scan.mhd"),
        ("fsync", "dir"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.mhd", "scan.raw"]


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "a.nii.gz") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("writer crashed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CTLensError, match="no file"), atomic_output(tmp_path / "b.nii.gz"):
        pass
    assert list(tmp_path.iterdir()) == []
