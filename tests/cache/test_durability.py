"""Cache entries are durable: every file is fsynced before its rename, the folder after, the manifest last.

A power cut cannot be staged in a test, so the test records the real system calls in order (the real
``os.fsync`` / ``os.replace`` still run: this is a spy, not a mock) and checks the order that makes a
manifest on disk imply its arrays on disk.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctlens.cache.entry_builder import build_entry
from ctlens.cache.layout import CacheSettings
from ctlens.cache.metadata import DatasetMetadata


def _raw(root: Path) -> dict:
    (root / "raw" / "s1").mkdir(parents=True)
    ct = np.full((24, 24, 4), -1000, np.int16)
    ct[5:19, 5:19] = 60
    ct[9, 9] = 1500
    nib.save(nib.Nifti1Image(ct, np.diag([1.0, 1.0, 4.0, 1.0])), root / "raw" / "s1" / "ct.nii.gz")
    return asdict(DatasetMetadata.from_directory(root).entries[0])


def _record(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        real_replace(src, dst)
        events.append(("replace", str(Path(dst).resolve())))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsynced descriptors")
def test_entry_files_are_fsynced_before_rename_and_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _raw(tmp_path)
    processed = tmp_path / "processed"
    settings = CacheSettings().as_dict()
    events = _record(monkeypatch)
    assert build_entry(str(tmp_path), str(processed), entry, settings)["status"] == "built"
    folder = str((processed / "s1").resolve())
    manifest = str((processed / "s1" / "ct.json").resolve())
    arrays = sorted(str(p.resolve()) for p in (processed / "s1").glob("*.npy"))
    assert len(arrays) == 4
    replaced = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    for i in replaced:  # the call just before each rename is the fsync of the file being renamed (its temp name)
        kind, path = events[i - 1]
        assert kind == "fsync" and Path(path).name.startswith((".tmp-", Path(events[i][1]).name)), events[i - 1 : i + 1]
    order = [path for kind, path in events if kind == "replace"]
    assert sorted(order[:-1]) == arrays and order[-1] == manifest  # the manifest is published last
    last_array = max(i for i in replaced if events[i][1] in arrays)
    manifest_at = next(i for i in replaced if events[i][1] == manifest)
    between = [path for kind, path in events[last_array + 1 : manifest_at] if kind == "fsync"]
    assert folder in between, "the folder was not fsynced between the arrays and the manifest"
    assert events[manifest_at + 1] == ("fsync", folder), "the folder was not fsynced after the manifest"

    # a rebuild first makes the removal of the old manifest durable
    events.clear()
    assert build_entry(str(tmp_path), str(processed), entry, settings)["status"] == "built"
    assert events[0] == ("fsync", folder)
