"""``ctlens convert`` of a multi-volume DICOM series (#23): one 4-D NIfTI, and FSL ``.bval``/``.bvec`` for diffusion.

Each case is written by mr_factory.py, converted by ``ctlens convert`` and by dcm2niix (PyPI) in the same test, and
compared: 4-D voxels volume by volume (exact), affine (<= 1e-3 mm), b-values, and b-vectors (1e-4) both as the
numbers in the files (dcm2niix's re-expressed along ctlens's voxel axes, as the FSL convention defines them) and
as directions in the patient, against the factory's gradient table.
"""

from __future__ import annotations

from pathlib import Path

import dcm2niix_peer as peer
import mr_factory as mf
import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

import ctlens
from ctlens.cli.main import app
from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume
from ctlens.io.fsl_gradients import fsl_bvecs
from ctlens.io.lps_ras import nifti_affine, volume_geometry_from_nifti_affine
from ctlens.io.nifti_volumes import write_nifti_volumes

pytestmark = peer.needs_dcm2niix

TABLE = [
    (0.0, (0.0, 0.0, 0.0)),
    (1000.0, (1.0, 0.0, 0.0)),
    (1000.0, (0.0, 0.6, 0.8)),
    (0.0, (0.0, 0.0, 0.0)),
    (2500.0, (0.267261, -0.534522, 0.801784)),
    (1000.0, (-0.707107, 0.0, -0.707107)),
]
"""b-value and direction (patient LPS, as DICOM stores them) per volume."""


def convert(src: Path, out: Path, *options: str) -> None:
    result = CliRunner().invoke(app, ["convert", str(src), str(out), *options])
    assert result.exit_code == 0, result.output


def truth_ras(table: list[tuple[float, tuple[float, float, float]]]) -> np.ndarray:
    g = np.array([d for _, d in table], dtype=np.float64).T * np.array([[-1.0], [-1.0], [1.0]])
    return g / np.maximum(np.linalg.norm(g, axis=0), 1e-12)


def ours_from_peer_bvecs(ours: nib.Nifti1Image, image: peer.PeerImage) -> np.ndarray:
    """dcm2niix's b-vectors re-expressed along the voxel axes of ctlens's file (FSL convention)."""
    ras = peer.world_bvecs(image.image, image.bvecs)
    linear = ours.affine[:3, :3]
    rotation = linear / np.linalg.norm(linear, axis=0)
    v = np.linalg.solve(rotation, ras)
    if np.linalg.det(rotation) > 0:
        v[0] = -v[0]
    return v


def compare_with_dcm2niix(
    src: Path, tmp_path: Path, table: list, same_sign: bool = True
) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Convert with both tools; the 4-D images, b-values and b-vectors must agree. ctlens's image and bvecs.

    ``same_sign=False``: a b-vector may be the opposite of dcm2niix's (the same measurement); its direction in the
    patient is still checked, sign included, against the gradient table.
    """
    out = tmp_path / "ours" / "dwi.nii.gz"
    out.parent.mkdir()
    convert(src, out)
    (image,) = peer.run_dcm2niix(src, tmp_path / "peer")
    ours = nib.load(out)
    assert ours.shape[3] == image.n_volumes == len(table)
    data, affine = peer.canonical(ours)
    theirs, their_affine = peer.canonical(image.image)
    np.testing.assert_allclose(affine, their_affine, atol=1e-3)
    for k in range(len(table)):
        assert np.array_equal(data[..., k].astype(np.float64), theirs[..., k].astype(np.float64)), f"volume {k}"
    bvals = [float(x) for x in (out.parent / "dwi.bval").read_text().split()]
    assert bvals == pytest.approx(image.bvals, abs=1e-4) and bvals == pytest.approx([b for b, _ in table])
    bvecs = np.loadtxt(out.parent / "dwi.bvec").reshape(3, -1)
    expected = ours_from_peer_bvecs(ours, image)
    if same_sign:
        np.testing.assert_allclose(bvecs, expected, atol=1e-4)
    else:  # g and -g are one diffusion measurement; each vector may be the opposite of dcm2niix's, never another
        apart = np.minimum(np.abs(bvecs - expected).max(axis=0), np.abs(bvecs + expected).max(axis=0))
        assert apart.max() <= 1e-4, f"b-vectors differ from dcm2niix's by {apart.max()}"
    np.testing.assert_allclose(peer.world_bvecs(ours, bvecs), truth_ras(table), atol=1e-4)
    return ours, bvecs


@pytest.mark.parametrize(
    "orientation, descending",
    [(mf.OBLIQUE, False), (mf.SAGITTAL, True), (mf.CORONAL, False), (mf.PRONE_AXIAL, True)],
    ids=["oblique", "sagittal-descending", "coronal", "prone-axial-descending"],
)
def test_convert_dwi_writes_fsl_gradients_as_dcm2niix(tmp_path: Path, orientation, descending: bool) -> None:
    fields = [
        {"DiffusionBValue": b, "DiffusionGradientOrientation": list(d), "AcquisitionNumber": i + 1}
        for i, (b, d) in enumerate(TABLE)
    ]
    truths = mf.write_mr_series(tmp_path / "in", fields, orientation=orientation, descending=descending)
    ours, _ = compare_with_dcm2niix(tmp_path / "in", tmp_path, TABLE)
    for k, truth in enumerate(truths):  # the 4-D file's volumes are the volumes ctlens.load reads
        spacing, origin, direction = volume_geometry_from_nifti_affine(ours.affine)
        array = np.asarray(ours.dataobj)[..., k].transpose(2, 1, 0)
        vol = Volume(array, spacing=spacing, origin=origin, direction=direction)
        assert np.array_equal(vol.array, truth.hu)
        np.testing.assert_allclose(vol.affine, truth.affine, atol=1e-4)


@pytest.mark.parametrize("reversed_normal", [False, True], ids=["normal", "reversed-normal"])
def test_convert_siemens_mosaic_dwi_from_csa(tmp_path: Path, reversed_normal: bool) -> None:
    """Directions from the CSA header, oblique; tiles stored along or against row x column.

    For tiles stored against row x column dcm2niix writes every b-vector with the opposite sign (its image then
    has a positive determinant); ctlens keeps the scanner's sign, checked against the table in the patient.
    """
    table = TABLE[:5]
    mf.write_mosaic_series(
        tmp_path / "in",
        len(table),
        orientation=mf.OBLIQUE,
        reversed_normal=reversed_normal,
        bvalues=[b for b, _ in table],
        directions=[d for _, d in table],
    )
    compare_with_dcm2niix(tmp_path / "in", tmp_path, table, same_sign=not reversed_normal)


@pytest.mark.parametrize("vendor", ["philips", "canon"])
def test_convert_enhanced_dwi(tmp_path: Path, vendor: str) -> None:
    """One enhanced file, directions in each frame's MRDiffusionSequence, oblique, frames shuffled.

    Direction by direction, b-value by b-value within each: the order the file's dimension index gives.
    """
    d1, d2 = (0.267261, -0.534522, 0.801784), (-0.707107, 0.0, -0.707107)
    table = [(0.0, (0.0, 0.0, 0.0)), (1000.0, d1), (2500.0, d1), (1000.0, d2), (2500.0, d2)]
    mf.write_enhanced_mr(
        tmp_path / "in" / "dwi.dcm", len(table), vendor=vendor, diffusion=table, orientation=mf.OBLIQUE
    )
    compare_with_dcm2niix(tmp_path / "in", tmp_path, table)


def test_convert_fmri_writes_4d_without_gradient_files(tmp_path: Path) -> None:
    mf.write_mr_series(tmp_path / "in", [{"AcquisitionNumber": v + 1} for v in range(4)], descending=True)
    out = tmp_path / "bold.nii"
    convert(tmp_path / "in", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bold.nii", "in"]
    (image,) = peer.run_dcm2niix(tmp_path / "in", tmp_path / "peer")
    data, theirs = peer.canonical(nib.load(out))[0], peer.canonical(image.image)[0]
    assert data.shape == theirs.shape == (*peer.volume_canonical(ctlens.load(tmp_path / "in"))[0].shape, 4)
    assert np.array_equal(data.astype(np.float64), theirs.astype(np.float64))


def test_convert_one_volume_is_3d(tmp_path: Path) -> None:
    fields = [{"DiffusionBValue": b, "DiffusionGradientOrientation": list(d)} for b, d in TABLE[:3]]
    truths = mf.write_mr_series(tmp_path / "in", fields)
    convert(tmp_path / "in", tmp_path / "v2.nii.gz", "--volume", "2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "v2.nii.gz"]
    assert np.array_equal(ctlens.load(tmp_path / "v2.nii.gz").array, truths[2].hu)


def test_fsl_bvecs_follow_the_voxel_axes_of_any_storage_order() -> None:
    """Every axis permutation and flip: the b-vectors rotate with the voxel axes, x negated where det > 0."""
    rng = np.random.default_rng(3)
    g = rng.normal(size=(5, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    for perm in ([0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1]):
        for signs in ([1, 1, 1], [-1, 1, 1], [1, -1, -1], [-1, -1, -1]):
            direction = np.eye(3)[:, perm] * np.array(signs, dtype=np.float64)
            vol = Volume(np.zeros((2, 3, 4), np.int16), direction=direction)
            v = fsl_bvecs(g, vol)
            image = nib.Nifti1Image(np.zeros((4, 3, 2), np.int16), nifti_affine(vol))
            np.testing.assert_allclose(peer.world_bvecs(image, v), (g * [-1, -1, 1]).T, atol=1e-12)


def test_gradient_table_that_does_not_fit_is_refused_and_nothing_written(tmp_path: Path) -> None:
    vols = [Volume(np.zeros((2, 2, 2), np.int16)) for _ in range(3)]
    with pytest.raises(CTLensError, match="3 volumes but 2 b-values") as err:
        write_nifti_volumes(vols, tmp_path / "x.nii.gz", bvals=[0, 1000], bvecs=[[0, 0, 0], [1, 0, 0]])
    assert "x.nii.gz" in str(err.value)
    moved = [vols[0], Volume(np.zeros((2, 2, 2), np.int16), origin=(0.0, 0.0, 5.0))]
    with pytest.raises(CTLensError, match="another grid"):
        write_nifti_volumes(moved, tmp_path / "y.nii.gz", bvals=[0, 0], bvecs=[[0, 0, 0]] * 2)
    assert list(tmp_path.iterdir()) == []
