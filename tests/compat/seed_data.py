"""Find the DICOM series under the shared data folder (any that are there, not a fixed list)."""

from __future__ import annotations

from pathlib import Path

from shared_data import data_dir


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def dicom_series_dirs(limit: int | None = None) -> list[Path]:
    """Folders of the shared data holding at least two DICOM files, sorted by path (skips when data is absent)."""
    found = []
    for folder in sorted({p.parent for p in data_dir().rglob("*") if p.is_file()}):
        files = [p for p in folder.iterdir() if p.is_file()]
        if sum(_is_dicom(p) for p in files[:8]) >= 2:
            found.append(folder)
    return found[:limit] if limit else found


def seed_python_blocks(prefix: str) -> list[str]:
    """The ```python blocks of seed ``prefix`` (e.g. ``"000"``) from ../shared/seeds, in document order."""
    import re

    import pytest

    seeds = data_dir().parent / "seeds"
    files = sorted(seeds.glob(f"{prefix}_*.txt"))
    if not files:
        pytest.skip(f"seed {prefix} not found under {seeds}")
    return re.findall(r"```python\n(.*?)```", files[0].read_text(), flags=re.S)
