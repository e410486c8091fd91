"""Small chest-like CT uploads for the service tests that need an in-domain scan (zero-shot CLIP scores).

A chest CLIP checkpoint scores only chest CT (issue #15): random 32x32 series are outside its domain, so tests
that expect probabilities upload the synthetic chest of :func:`ctlens.analysis.phantoms.chest_phantom` as NIfTI.
"""

from __future__ import annotations

from pathlib import Path

from ctlens.analysis.phantoms import chest_phantom, head_phantom
from ctlens.io import save


def write_chest_nifti(path: Path, seed: int = 0) -> Path:
    """A 40x96x128 chest phantom (5 x 3 x 3 mm, 10 HU noise, ``seed``) saved as NIfTI at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save(chest_phantom(noise_hu=10.0, seed=seed)[0], path)
    return path


def write_head_nifti(path: Path, seed: int = 0) -> Path:
    """A 24x128x128 head phantom (skull, brain; 5 x 1.5 x 1.5 mm) saved as NIfTI at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save(head_phantom(noise_hu=5.0, seed=seed)[0], path)
    return path
