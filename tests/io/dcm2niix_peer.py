"""dcm2niix (the ``dcm2niix`` package on PyPI ships the binary) as the peer of ctlens's DICOM reader in tests.

:func:`run_dcm2niix` converts a folder in a private output folder and returns every image it wrote with its
sidecar, b-values and b-vectors. :func:`canonical` brings a NIfTI image, and :func:`volume_canonical` a ctlens
``Volume``, to the closest canonical (RAS+) voxel order, so both can be compared voxel for voxel and affine for
affine whatever order each tool stores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.io.lps_ras import nifti_affine


def dcm2niix_binary() -> str | None:
    """The dcm2niix executable next to this Python (the PyPI package's), else on PATH."""
    beside = Path(sys.executable).with_name("dcm2niix")
    return str(beside) if beside.exists() else shutil.which("dcm2niix")


needs_dcm2niix = pytest.mark.skipif(dcm2niix_binary() is None, reason="dcm2niix not installed (pip install dcm2niix)")


@dataclass
class PeerImage:
    """One image dcm2niix wrote."""

    path: Path
    image: nib.Nifti1Image
    sidecar: dict
    bvals: list[float] | None
    bvecs: np.ndarray | None

    @property
    def n_volumes(self) -> int:
        return 1 if self.image.ndim == 3 else int(self.image.shape[3])


def run_dcm2niix(folder: Path, out: Path, *options: str) -> list[PeerImage]:
    """Convert ``folder`` (``-z n -b y``, plus ``options``) into ``out``; the images, sorted by file name."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        dcm2niix_binary() or "dcm2niix",
        "-z",
        "n",
        "-b",
        "y",
        "-f",
        "%s_%d",
        *options,
        "-o",
        str(out),
        str(folder),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode not in (0, 2):  # 2: no DICOM found (a test may expect that)
        raise AssertionError(f"dcm2niix failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    images = []
    for path in sorted(out.glob("*.nii")):
        stem = path.with_suffix("")
        sidecar = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
        bval, bvec = stem.with_suffix(".bval"), stem.with_suffix(".bvec")
        bvals = [float(x) for x in bval.read_text().split()] if bval.exists() else None
        bvecs = np.loadtxt(bvec).reshape(3, -1) if bvec.exists() else None
        images.append(PeerImage(path, nib.load(path), sidecar, bvals, bvecs))
    return images


def canonical(image: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """``(data, affine)`` of ``image`` in the closest canonical (RAS+) voxel order; data with scaling applied."""
    image = nib.as_closest_canonical(image)
    return np.asarray(np.asanyarray(image.dataobj)), image.affine  # an ArrayProxy applies scl_slope / scl_inter


def volume_canonical(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """A ctlens ``Volume`` as :func:`canonical` gives a NIfTI image of it."""
    return canonical(nib.Nifti1Image(np.ascontiguousarray(volume.array.transpose(2, 1, 0)), nifti_affine(volume)))


def assert_same(volume: Volume, peer: PeerImage, k: int | None = None, atol_mm: float = 1e-3) -> None:
    """``volume`` equals volume ``k`` of ``peer`` (its only one when None): shape, affine (``atol_mm``), voxels."""
    data, affine = canonical(peer.image)
    if data.ndim == 4:
        assert k is not None, f"{peer.path.name} holds {data.shape[3]} volumes"
        data = data[..., k]
    ours, our_affine = volume_canonical(volume)
    assert ours.shape == data.shape, f"shape {ours.shape} != dcm2niix {data.shape} ({peer.path.name})"
    np.testing.assert_allclose(our_affine, affine, atol=atol_mm, err_msg=f"affine differs from {peer.path.name}")
    assert np.array_equal(ours.astype(np.float64), data.astype(np.float64)), f"voxels differ from {peer.path.name}"


def matching(volume: Volume, peers: list[PeerImage], k: int | None = None) -> PeerImage:
    """The one image of ``peers`` that ``volume`` equals (:func:`assert_same`); fails if none or several."""
    found = []
    for peer in peers:
        try:
            assert_same(volume, peer, k if peer.n_volumes > 1 else None)
        except AssertionError:
            continue
        found.append(peer)
    names = [p.path.name for p in peers]
    assert len(found) == 1, f"{len(found)} of dcm2niix's images {names} equal the volume"
    return found[0]


def world_bvecs(image: nib.Nifti1Image, bvecs: np.ndarray) -> np.ndarray:
    """``3 x N`` FSL b-vectors of ``image`` (voxel axes, x negated for a positive determinant) in world RAS.

    Undoes FSL's convention with the image's own affine, so b-vectors of two files that store their voxels in
    different orders can be compared direction for direction.
    """
    linear = image.affine[:3, :3]
    rotation = linear / np.linalg.norm(linear, axis=0)
    v = np.array(bvecs, dtype=np.float64).reshape(3, -1).copy()
    if np.linalg.det(rotation) > 0:
        v[0] = -v[0]
    return rotation @ v
