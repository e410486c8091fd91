"""Helpers of the seed 002 (neurovfm) tests: the seed's code blocks with the import lines and data paths changed, the
shared images (discovered, not listed), a seed-shaped data folder built from them, and a toy model.

Nothing here knows the shared files by name: CT and MR images are found by reading them, and a head CT is preferred
(the seed is about neuroimaging) when a DICOM series says so in BodyPartExamined / StudyDescription.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pydicom
import pytest
import torch
from seed_data import dicom_series_dirs, seed_python_blocks

from ctlens.io.loader import load
from ctlens.preprocess.mode import detect_mode
from shared_data import data_dir

NEUROVFM = {
    "from neurovfm.data import": "from ctlens.compat.neurovfm.data import",
    "from neurovfm.datasets import": "from ctlens.compat.neurovfm.datasets import",
}


def seed_text() -> str:
    """The whole text of seed 002."""
    seeds = data_dir().parent / "seeds"
    files = sorted(seeds.glob("002_*.txt"))
    if not files:
        pytest.skip(f"seed 002 not found under {seeds}")
    return files[0].read_text()


def seed_blocks(root: Path | None = None) -> list[str]:
    """Seed 002's python blocks, imports pointed at ctlens.compat.neurovfm and ``'/data`` at ``root``."""
    out = []
    for block in seed_python_blocks("002"):
        for old, new in NEUROVFM.items():
            block = block.replace(old, new)
        if root is not None:
            block = block.replace("'/data", f"'{root.as_posix()}")
        out.append(block)
    return out


def seed_labels_csv() -> str:
    """The seed's example labels CSV (its ```csv block)."""
    found = re.findall(r"```csv\n(.*?)```", seed_text(), flags=re.S)
    assert found, "seed 002 has no csv block"
    return found[0]


def seed_item_keys() -> list[str]:
    """The keys of the seed's documented dataset item (its "Output format" block)."""
    block = next(b for b in seed_python_blocks("002") if b.lstrip().startswith("{"))
    return re.findall(r"^\s*'(\w+)':", block, flags=re.M)


def _header(folder: Path) -> pydicom.Dataset:
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with path.open("rb") as fh:
                fh.seek(128)
                if fh.read(4) == b"DICM":
                    return pydicom.dcmread(path, stop_before_pixels=True)
    raise AssertionError(f"{folder}: no DICOM file")


def _is_head(folder: Path) -> bool:
    ds = _header(folder)
    text = f"{ds.get('BodyPartExamined', '')} {ds.get('StudyDescription', '')}".upper()
    return any(word in text for word in ("HEAD", "BRAIN", "SKULL", "NEURO"))


def _dicom_mode(folder: Path) -> str:
    return "mri" if str(_header(folder).get("Modality", "")).upper() == "MR" else "ct"


def shared_images() -> list[tuple[Path, str]]:
    """``(path, mode)`` of every shared image: DICOM series folders and NIfTI files (mode read from them)."""
    found = [(folder, _dicom_mode(folder)) for folder in dicom_series_dirs()]
    for path in sorted(data_dir().rglob("*.nii*")):
        found.append((path, detect_mode(load(path))[0]))
    if not found:
        pytest.skip("no images in the shared data")
    return found


def ct_series() -> list[Path]:
    """Shared DICOM CT series folders, head CTs first."""
    series = [f for f in dicom_series_dirs() if _dicom_mode(f) == "ct"]
    if not series:
        pytest.skip("no DICOM CT series in the shared data")
    return sorted(series, key=lambda f: (not _is_head(f), str(f)))


def mr_image() -> Path | None:
    """A shared MR NIfTI file (by its intensities), or None."""
    return next((p for p in sorted(data_dir().rglob("*.nii*")) if detect_mode(load(p))[0] == "mri"), None)


def seed_data_folder(root: Path, mr_fallback: Path) -> dict[str, str]:
    """The seed's layout under ``root``: ``raw/patient_001/T1.nii.gz`` (MR), ``raw/patient_002/ct_scan/`` (a head CT
    if there is one) and, when the shared data has another CT series, ``raw/patient_003/ct_scan/``.

    ``mr_fallback``: an MR NIfTI to use when the shared data has none. Returns ``{study: mode}``.
    """
    mr = mr_image() or mr_fallback
    (root / "raw" / "patient_001").mkdir(parents=True)
    shutil.copy(mr, root / "raw" / "patient_001" / ("T1.nii.gz" if mr.name.endswith(".gz") else "T1.nii"))
    studies = {"patient_001": "mri"}
    for n, folder in enumerate(ct_series()[:2], start=2):
        shutil.copytree(folder, root / "raw" / f"patient_{n:03d}" / "ct_scan")
        studies[f"patient_{n:03d}"] = "ct"
    return studies


class ToyModel(torch.nn.Module):
    """Stands for the user's model in the seed's examples: takes ``(img [B, N, 1024], coords [B, N, 3], filtered)``
    and records the shapes it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(1024, 4)
        self.calls: list[tuple[tuple[int, ...], ...]] = []

    def forward(self, img: torch.Tensor, coords: torch.Tensor, filtered: torch.Tensor | None = None) -> torch.Tensor:
        shapes = (tuple(img.shape), tuple(coords.shape), tuple(filtered.shape) if filtered is not None else ())
        self.calls.append(shapes)
        weight = (1 - filtered.float())[..., None] if filtered is not None else torch.ones_like(img[..., :1])
        return (self.proj(img) * weight).sum(1)
