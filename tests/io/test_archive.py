"""Hostile and broken input: unsafe zips, zip bombs, empty and fake files, empty folders.

Every failure must be the right ``CTLensError`` subclass, name the file, and leave nothing behind:
the system temporary folder is redirected to a sandbox that must be empty after each test.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dicom_factory as fac
import numpy as np
import pytest

from ctlens.core.errors import CorruptFileError, InputNotFoundError, UnsafeArchiveError


def load(path, **kw):
    import ctlens

    return ctlens.load(path, **kw)


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Redirect temporary files to a folder of our own and check a failed load leaves it empty."""
    box = tmp_path / "system-tmp"
    box.mkdir()
    monkeypatch.setenv("TMPDIR", str(box))
    monkeypatch.setattr(tempfile, "tempdir", str(box))
    yield box
    left = sorted(str(p.relative_to(box)) for p in box.rglob("*"))
    assert not left, f"a failed load left files behind in the temporary folder: {left[:5]}"


@contextlib.contextmanager
def file_size_limit(max_bytes: int) -> Iterator[None]:
    """Make writing any file larger than ``max_bytes`` fail (EFBIG) in this process, where the OS allows it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.fixture(scope="session")
def bomb_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 MB of zeros deflated into ~200 kB (written once per session, streamed)."""
    path = tmp_path_factory.mktemp("bomb") / "scan.zip"
    fac.make_evil_zip(path, "bomb")
    assert path.stat().st_size < 2 * 2**20
    return path


# --------------------------------------------------------------------------- unsafe archives


def test_zip_with_parent_traversal_is_refused(tmp_path: Path, sandbox: Path) -> None:
    archive = tmp_path / "inbox" / "upload.zip"
    (evil,) = fac.make_evil_zip(archive, "traversal")
    assert evil.startswith("../")
    with pytest.raises(UnsafeArchiveError) as info:
        load(archive)
    assert "upload.zip" in str(info.value)
    assert not list(tmp_path.rglob("evil*")), "the traversal member was written"
    assert not list(tmp_path.rglob("readme.txt")), "members were extracted before the check failed"


def test_zip_with_absolute_member_is_refused(tmp_path: Path, sandbox: Path) -> None:
    archive = tmp_path / "absolute.zip"
    (evil,) = fac.make_evil_zip(archive, "absolute")
    try:
        with pytest.raises(UnsafeArchiveError) as info:
            load(archive)
        assert "absolute.zip" in str(info.value)
        assert not Path(evil).exists(), f"{evil} was written"
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(evil).unlink()


def test_zip_bomb_is_refused_quickly_without_writing(bomb_zip: Path, sandbox: Path) -> None:
    start = time.perf_counter()
    with file_size_limit(32 * 2**20), pytest.raises(UnsafeArchiveError) as info:
        load(bomb_zip)
    elapsed = time.perf_counter() - start
    assert "scan.zip" in str(info.value)
    assert elapsed < 3.0, f"refusing the bomb took {elapsed:.1f} s: it was probably decompressed"
    assert _tree_bytes(sandbox) < 2**20


def test_zip_bomb_inside_a_folder_is_refused(tmp_path: Path, bomb_zip: Path, sandbox: Path) -> None:
    folder = tmp_path / "upload"
    fac.write_ct_series(folder / "series", n_slices=3)
    shutil.copyfile(bomb_zip, folder / "extra.zip")
    with file_size_limit(32 * 2**20), pytest.raises(UnsafeArchiveError) as info:
        load(folder)
    assert "extra.zip" in str(info.value)


def test_zip_over_total_size_limit_is_refused(tmp_path: Path, sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "big.zip"
    fac.make_evil_zip(archive, "oversize", total_bytes=3 * 2**20)  # incompressible: ratio ~1
    monkeypatch.setenv("CTLENS_MAX_ARCHIVE_BYTES", str(2**20))
    with pytest.raises(UnsafeArchiveError) as info:
        load(archive)
    assert "big.zip" in str(info.value)


def test_small_series_zip_passes_the_size_limit(tmp_path: Path, sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = fac.write_ct_series(tmp_path / "series", n_slices=4)
    archive = fac.make_zip(tmp_path / "series", tmp_path / "ok.zip")
    monkeypatch.setenv("CTLENS_MAX_ARCHIVE_BYTES", str(2**20))
    vol = load(archive)
    assert np.array_equal(vol.array, truth.hu)


def test_fake_zip_is_corrupt(tmp_path: Path, sandbox: Path) -> None:
    path = fac.write_non_dicom(tmp_path / "fake.zip")
    with pytest.raises(CorruptFileError) as info:
        load(path)
    assert "fake.zip" in str(info.value)


# --------------------------------------------------------------------------- empty and fake files, folders


def test_zero_byte_file_is_corrupt(tmp_path: Path, sandbox: Path) -> None:
    path = tmp_path / "empty_slice.dcm"
    path.write_bytes(b"")
    with pytest.raises(CorruptFileError) as info:
        load(path)
    assert "empty_slice.dcm" in str(info.value)


def test_random_bytes_named_dcm_is_corrupt(tmp_path: Path, sandbox: Path) -> None:
    path = fac.write_non_dicom(tmp_path / "noise.dcm")
    with pytest.raises(CorruptFileError) as info:
        load(path)
    assert "noise.dcm" in str(info.value)


def test_empty_folder_is_not_found(tmp_path: Path, sandbox: Path) -> None:
    folder = tmp_path / "nothing_here"
    folder.mkdir()
    with pytest.raises(InputNotFoundError) as info:
        load(folder)
    assert "nothing_here" in str(info.value)


def test_folder_without_dicom_is_not_found(tmp_path: Path, sandbox: Path) -> None:
    folder = tmp_path / "documents"
    fac.write_non_dicom(folder / "README.txt", "not an image\n")
    fac.write_non_dicom(folder / "sub" / "blob.bin")
    with pytest.raises(InputNotFoundError) as info:
        load(folder)
    assert "documents" in str(info.value)


def test_missing_path_is_not_found(tmp_path: Path, sandbox: Path) -> None:
    with pytest.raises(InputNotFoundError) as info:
        load(tmp_path / "no_such_series")
    assert "no_such_series" in str(info.value)
