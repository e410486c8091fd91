"""4-D NIfTI reading (#23 follow-up): ``ctlens.load(..., volume=k)``, ``ctlens.load_volumes`` and FSL gradients.

A diffusion series written by mr_factory.py goes through ``ctlens convert`` (one 4-D NIfTI with ``.bval`` /
``.bvec``) and, where installed, through dcm2niix; both files must load back to the DICOM volumes: voxels exactly,
affine within 1e-3 mm, b-values, and b-vectors (LPS) within 1e-4. The reading rules (every storage order, scaling,
byte order, volume by volume, bad gradient files, 5-D) are checked on files written here with nibabel.
"""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import dcm2niix_peer as peer
import mr_factory as mf
import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

import ctlens
from ctlens.cli.main import app
from ctlens.core.errors import CorruptFileError, SeriesSelectionError, UnsupportedFormatError
from ctlens.core.volume import Volume
from ctlens.io.fsl_gradients import fsl_bvecs, lps_bvecs
from ctlens.io.lps_ras import nifti_affine
from ctlens.io.nifti import read_nifti, read_nifti_volumes
from ctlens.io.nifti_volumes import write_nifti_volumes

TABLE = [
    (0.0, (0.0, 0.0, 0.0)),
    (1000.0, (1.0, 0.0, 0.0)),
    (1000.0, (0.0, 0.6, 0.8)),
    (2500.0, (0.267261, -0.534522, 0.801784)),
    (1000.0, (-0.707107, 0.0, -0.707107)),
]
"""b-value and direction (patient LPS, as DICOM stores them) per volume."""

ORDERS = pytest.mark.parametrize(
    "orientation, descending",
    [(mf.OBLIQUE, False), (mf.PRONE_AXIAL, True), (mf.SAGITTAL, True)],
    ids=["oblique", "prone-axial-descending", "sagittal-descending"],
)


def unit(vectors: list | np.ndarray) -> np.ndarray:
    g = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    return np.where(norms > 0, g / np.where(norms > 0, norms, 1.0), 0.0)


def dwi_series(folder: Path, orientation, descending: bool) -> list[mf.VolumeTruth]:
    fields = [
        {"DiffusionBValue": b, "DiffusionGradientOrientation": list(d), "AcquisitionNumber": i + 1}
        for i, (b, d) in enumerate(TABLE)
    ]
    return mf.write_mr_series(folder, fields, orientation=orientation, descending=descending)


def assert_same_volumes(ours: list[Volume], dicom: list[Volume]) -> None:
    """Voxels exactly, affine within 1e-3 mm, b-values and LPS b-vectors within 1e-4, volume for volume."""
    assert len(ours) == len(dicom)
    for k, (got, want) in enumerate(zip(ours, dicom, strict=True)):
        assert got.meta["n_volumes"] == len(dicom) and got.meta["volume_index"] == k
        assert got.shape == want.shape and np.array_equal(got.array, want.array), f"volume {k} voxels"
        np.testing.assert_allclose(got.affine, want.affine, atol=1e-3, err_msg=f"volume {k} affine")
        np.testing.assert_allclose(got.meta["bvals"], want.meta["bvals"], atol=1e-4)
        np.testing.assert_allclose(got.meta["bvecs"], unit(want.meta["bvecs"]), atol=1e-4)
        assert got.meta["diffusion_bvalue"] == got.meta["bvals"][k]


def convert(src: Path, out: Path) -> None:
    result = CliRunner().invoke(app, ["convert", str(src), str(out)])
    assert result.exit_code == 0, result.output


@ORDERS
def test_convert_output_loads_back_to_the_dicom_volumes(tmp_path: Path, orientation, descending: bool) -> None:
    truths = dwi_series(tmp_path / "in", orientation, descending)
    dicom = ctlens.load_volumes(tmp_path / "in")
    out = tmp_path / "out" / "dwi.nii.gz"
    out.parent.mkdir()
    convert(tmp_path / "in", out)
    ours = ctlens.load_volumes(out)
    assert_same_volumes(ours, dicom)
    for vol, truth in zip(ours, truths, strict=True):
        assert np.array_equal(vol.array, truth.hu)
    np.testing.assert_allclose(ours[0].meta["bvecs"], unit([d for _, d in TABLE]), atol=1e-4)
    for k in (0, 3, len(TABLE) - 1):  # one volume read alone equals the same volume of load_volumes
        one = ctlens.load(out, volume=k)
        assert np.array_equal(one.array, ours[k].array) and one.meta == ours[k].meta
    again = tmp_path / "out" / "again.nii.gz"  # NIfTI to NIfTI keeps every volume and the gradients
    convert(out, again)
    assert_same_volumes(ctlens.load_volumes(again), dicom)
    picked = tmp_path / "out" / "v3.nii"
    assert CliRunner().invoke(app, ["convert", str(out), str(picked), "--volume", "3"]).exit_code == 0
    assert np.array_equal(ctlens.load(picked).array, ours[3].array)


@peer.needs_dcm2niix
@ORDERS
def test_dcm2niix_output_loads_with_the_same_values(tmp_path: Path, orientation, descending: bool) -> None:
    dwi_series(tmp_path / "in", orientation, descending)
    dicom = ctlens.load_volumes(tmp_path / "in")
    (image,) = peer.run_dcm2niix(tmp_path / "in", tmp_path / "peer")
    theirs = ctlens.load_volumes(image.path)
    assert len(theirs) == len(dicom) == theirs[0].meta["n_volumes"]
    for k, (got, want) in enumerate(zip(theirs, dicom, strict=True)):
        data, affine = peer.volume_canonical(got)  # dcm2niix may store another voxel order: compare in RAS+
        want_data, want_affine = peer.volume_canonical(want)
        assert np.array_equal(data.astype(np.float64), want_data.astype(np.float64)), f"volume {k}"
        np.testing.assert_allclose(affine, want_affine, atol=1e-3)
    np.testing.assert_allclose(theirs[0].meta["bvals"], [b for b, _ in TABLE], atol=1e-4)
    np.testing.assert_allclose(theirs[0].meta["bvecs"], unit(dicom[0].meta["bvecs"]), atol=1e-4)


def test_every_storage_order_gives_back_the_lps_directions(tmp_path: Path) -> None:
    """Axis permutations and flips of the voxel grid: voxels, affine and LPS b-vectors survive write and read."""
    rng = np.random.default_rng(7)
    g = rng.normal(size=(4, 3))
    g[0] = 0.0
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    for perm in ([0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1]):
        for signs in ([1, 1, 1], [-1, 1, 1], [1, -1, -1], [-1, -1, -1]):
            direction = np.eye(3)[:, perm] * np.array(signs, dtype=np.float64)
            vols = [
                Volume(rng.integers(-50, 50, (2, 3, 4)).astype(np.int16), spacing=(2, 1, 0.5), direction=direction)
                for _ in g
            ]
            out = tmp_path / f"d{''.join(map(str, perm))}{''.join('+-'[s < 0] for s in signs)}.nii"
            write_nifti_volumes(vols, out, bvals=[0, 1000, 1000, 2000], bvecs=g.tolist())
            got = read_nifti_volumes(out)
            for vol, want in zip(got, vols, strict=True):
                assert np.array_equal(vol.array, want.array)
                np.testing.assert_allclose(vol.affine, want.affine, atol=1e-5)
            np.testing.assert_allclose(got[0].meta["bvecs"], g, atol=1e-5)
            np.testing.assert_allclose(lps_bvecs(fsl_bvecs(g, vols[0]), nifti_affine(vols[0])), g, atol=1e-12)


def test_bvec_as_n_lines_of_three_reads_the_same(tmp_path: Path) -> None:
    vols = [Volume(np.full((2, 2, 2), k, np.int16), modality="MR") for k in range(4)]
    g = unit([[0, 0, 0], [1, 0, 0], [0, 0.6, 0.8], [0, -1, 0]])
    out = tmp_path / "dwi.nii"
    write_nifti_volumes(vols, out, bvals=[0, 1000, 1000, 1000], bvecs=g.tolist())
    want = read_nifti(out, volume=2).meta["bvecs"]
    bvec = tmp_path / "dwi.bvec"
    columns = zip(*(line.split() for line in bvec.read_text().splitlines()), strict=True)
    bvec.write_text("\n".join(" ".join(row) for row in columns) + "\n")
    assert read_nifti(out, volume=2).meta["bvecs"] == want
    np.testing.assert_allclose(want, g, atol=1e-6)


def _with_scaling(path: Path, slope: float, inter: float) -> None:
    """Set ``scl_slope`` / ``scl_inter`` in the NIfTI-1 header of ``path`` (nibabel resets them when saving)."""
    import gzip

    raw = bytearray(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    raw[112:120] = np.array([slope, inter], dtype="<f4").tobytes()
    path.write_bytes(gzip.compress(bytes(raw)) if path.suffix == ".gz" else bytes(raw))


def _header(dtype: str) -> nib.Nifti1Header:
    header = nib.Nifti1Header(endianness=dtype[0])
    header.set_data_dtype(np.dtype(dtype))
    return header


def test_volume_k_of_a_scaled_big_endian_file_equals_its_3d_file(tmp_path: Path) -> None:
    """Scaled int16 and big-endian data: each volume reads as the 3-D file of that volume reads (dtype too)."""
    rng = np.random.default_rng(1)
    for name, dtype, scaled in (("s.nii.gz", "<i2", True), ("be.nii", ">i4", False), ("f.nii.gz", "<f4", False)):
        data = rng.normal(0, 300, (5, 4, 3, 3)).astype(dtype)
        affine = np.diag([-0.5, 2.0, 3.0, 1.0])
        nib.save(nib.Nifti1Image(data, affine, _header(dtype)), tmp_path / name)
        for k in range(data.shape[3]):
            nib.save(nib.Nifti1Image(data[..., k], affine, _header(dtype)), tmp_path / f"{k}_{name}")
            if scaled:
                _with_scaling(tmp_path / f"{k}_{name}", 0.37, -12.5)
        if scaled:
            _with_scaling(tmp_path / name, 0.37, -12.5)
        assert nib.load(tmp_path / name).get_data_dtype() == np.dtype(dtype)
        for k in range(data.shape[3]):
            want = read_nifti(tmp_path / f"{k}_{name}")
            got = read_nifti(tmp_path / name, volume=k)
            assert got.array.dtype == want.array.dtype == (np.float32 if scaled else np.dtype(dtype))
            assert np.array_equal(got.array, want.array) and got.meta["scaled"] == scaled
            expected = data[..., k].astype(np.float64) * 0.37 - 12.5 if scaled else data[..., k]
            np.testing.assert_allclose(got.array, expected.transpose(2, 1, 0), rtol=1e-6, atol=1e-3)
            np.testing.assert_allclose(got.affine, want.affine)


def test_default_volume_warns_with_the_count_and_bad_volume_is_refused(tmp_path: Path, caplog) -> None:
    data = np.arange(4 * 3 * 2 * 3, dtype=np.int16).reshape(4, 3, 2, 3, order="F")
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "bold.nii.gz")
    with caplog.at_level(logging.WARNING, logger="ctlens.io.nifti"):
        vol = ctlens.load(tmp_path / "bold.nii.gz")
    assert np.array_equal(vol.array, data[..., 0].transpose(2, 1, 0)) and vol.meta["n_volumes"] == 3
    assert any("bold.nii.gz" in r.getMessage() and "3 volumes" in r.getMessage() for r in caplog.records)
    assert any("3 volumes" in w for w in vol.meta["warnings"])
    assert np.array_equal(ctlens.load(tmp_path / "bold.nii.gz", volume=2).array, data[..., 2].transpose(2, 1, 0))
    for bad in (3, -1, "1", True, 1.0):
        with pytest.raises(SeriesSelectionError) as err:
            ctlens.load(tmp_path / "bold.nii.gz", volume=bad)
        assert "holds 3" in str(err.value) and "bold.nii.gz" in str(err.value) and "\n" not in str(err.value)
    assert "warnings" not in ctlens.load(tmp_path / "bold.nii.gz", volume=1).meta


def test_info_shows_the_volume_count(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2, 6), np.int16), np.eye(4)), tmp_path / "bold.nii.gz")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "bold.nii.gz")])
    assert result.exit_code == 0, result.output
    assert "6 volumes (volume 0 shown" in " ".join(result.output.split())  # rich may wrap the line


def test_one_volume_is_read_without_reading_the_others(tmp_path: Path) -> None:
    """Memory while reading volume k of a 40-volume .nii.gz stays near one volume, not the 4-D array."""
    rng = np.random.default_rng(2)
    data = rng.integers(-1000, 1000, (64, 64, 24, 40)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "bold.nii.gz")
    volume_bytes = data[..., 0].nbytes
    tracemalloc.start()
    try:
        vol = ctlens.load(tmp_path / "bold.nii.gz", volume=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(vol.array, data[..., 30].transpose(2, 1, 0))
    # the raw block, its [z, y, x] copy, the modality guess and gzip's buffers; the 4-D array would be 40 volumes
    assert peak < 6 * volume_bytes < data.nbytes / 6, f"peak {peak} bytes for a volume of {volume_bytes}"


def test_declared_size_is_checked_before_reading(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((4, 3, 2, 2), np.int16), np.eye(4))
    nib.save(img, tmp_path / "cut.nii")
    raw = (tmp_path / "cut.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[: -4 * 3 * 2 * 2 // 2])  # half of the last volume is gone
    with pytest.raises(CorruptFileError, match="truncated"):
        ctlens.load(tmp_path / "cut.nii", volume=0)
    big = nib.Nifti1Image(np.zeros((64, 64, 64, 1), np.uint8), np.eye(4))
    big.header.set_data_shape((64, 64, 64, 20000))
    with pytest.raises(CorruptFileError, match="claims"):  # a small .nii.gz claiming 5 GB: over the inflate ratio
        ctlens.load_volumes(_raw_gzip_with_header(big, tmp_path / "claims.nii.gz"))


def _raw_gzip_with_header(img: nib.Nifti1Image, path: Path) -> Path:
    """A .nii.gz whose header declares ``img``'s shape but which holds one volume's worth of zeros."""
    import gzip

    header = img.header.copy()
    header.set_data_offset(352)
    body = header.binaryblock + b"\0" * 4 + b"\0" * (64 * 64 * 64)
    path.write_bytes(gzip.compress(body))
    return path


def test_five_dimensions_are_refused_and_trailing_ones_are_not(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2, 2, 3), np.float32), np.eye(4)), tmp_path / "tensor.nii.gz")
    with pytest.raises(UnsupportedFormatError, match="5-D") as err:
        ctlens.load_volumes(tmp_path / "tensor.nii.gz")
    assert "tensor.nii.gz" in str(err.value)
    nib.save(nib.Nifti1Image(np.ones((4, 3, 2, 3, 1), np.float32), np.eye(4)), tmp_path / "four.nii.gz")
    assert [v.shape for v in ctlens.load_volumes(tmp_path / "four.nii.gz")] == [(2, 3, 4)] * 3


BAD_GRADIENTS = {
    "bvec-count": ("dwi.bvec", lambda b, v: (b, "\n".join(" ".join(x.split()[:-1]) for x in v.splitlines())), "4"),
    "bvec-nan": ("dwi.bvec", lambda b, v: (b, v.replace("1", "nan", 1)), "NaN"),
    "bvec-text": ("dwi.bvec", lambda b, v: (b, "x y z\n" + v), "not a number"),
    "bvec-two-lines": ("dwi.bvec", lambda b, v: (b, "\n".join(v.splitlines()[:2])), "not 3 lines"),
    "bvec-missing": ("dwi.bval", lambda b, v: (b, None), "without dwi.bvec"),
    "bval-count": ("dwi.bval", lambda b, v: ("0 1000\n", v), "2 b-values"),
    "bval-negative": ("dwi.bval", lambda b, v: ("0 -1000 1000 1000 1000\n", v), "negative"),
}


@pytest.mark.parametrize("case", list(BAD_GRADIENTS))
def test_bad_gradient_file_is_one_clear_error_naming_it(tmp_path: Path, case: str) -> None:
    named, change, words = BAD_GRADIENTS[case]
    vols = [Volume(np.full((2, 2, 2), k, np.int16), modality="MR") for k in range(5)]
    out = tmp_path / "dwi.nii.gz"
    write_nifti_volumes(vols, out, bvals=[b for b, _ in TABLE], bvecs=[d for _, d in TABLE])
    bval, bvec = tmp_path / "dwi.bval", tmp_path / "dwi.bvec"
    new_bval, new_bvec = change(bval.read_text(), bvec.read_text())
    bval.write_text(new_bval)
    if new_bvec is None:
        bvec.unlink()
    else:
        bvec.write_text(new_bvec)
    for read in (lambda: ctlens.load(out, volume=1), lambda: ctlens.load_volumes(out)):
        with pytest.raises(CorruptFileError) as err:
            read()
        text = str(err.value)
        assert named in text and "dwi.nii.gz" in text and words in text and "\n" not in text, text
    result = CliRunner().invoke(app, ["info", str(out)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "error" in line]
    assert len(lines) == 1 and named in lines[0], result.output


def test_3d_file_with_one_gradient_entry(tmp_path: Path) -> None:
    vol = Volume(np.zeros((2, 3, 4), np.int16), modality="MR")
    write_nifti_volumes([vol], tmp_path / "b1000.nii", bvals=[1000], bvecs=[[0.0, 0.6, 0.8]])
    got = ctlens.load(tmp_path / "b1000.nii")
    assert got.meta["n_volumes"] == 1 and got.meta["bvals"] == [1000.0] and "warnings" not in got.meta
    np.testing.assert_allclose(got.meta["diffusion_gradient"], [0.0, 0.6, 0.8], atol=1e-6)
