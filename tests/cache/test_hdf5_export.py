"""HDF5 export for 3D CLIP: geometry of one volume, and a whole export with good and bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import dicom_factory as fac
import h5py
import numpy as np
import pytest

import ctlens
from ctlens.cache.hdf5_export import METADATA_COLUMNS, export_hdf5
from ctlens.cache.hdf5_sources import discover_volumes
from ctlens.core.errors import InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.preprocess.clip_input import to_clip_array


def _phantom() -> Volume:
    """Axial CT stored the DICOM way (axes S, P, L), 5 mm slices, with a bright cube superior-anterior-right."""
    ct = np.full((12, 60, 80), -1000, np.int16)
    ct[1:11, 10:50, 10:70] = 0  # body (water)
    ct[8:10, 12:20, 12:24] = 800  # marker: high slice index = superior, low row = anterior, low column = right
    return Volume(ct, spacing=(5.0, 1.0, 1.0), origin=(-40.0, -30.0, 100.0))


def test_to_clip_array_orientation_resize_pad_and_scale() -> None:
    vol = _phantom()
    target = (48, 64, 64)
    arr, attrs = to_clip_array(vol, target_shape=target)
    assert arr.shape == target and arr.dtype == np.uint8
    assert attrs["axcodes"] == "SAR" and attrs["nifti_axcodes"] == "RAS" and attrs["slice_order"] == "b2u"
    # aspect preserved: one isotropic spacing, the longest physical side (60 mm z, 60 mm y, 80 mm x) fills its axis
    step = max(60 / 48, 60 / 64, 80 / 64)
    assert attrs["spacing"] == (step, step, step)
    assert attrs["resized_shape"] == (48, 48, 64)
    assert attrs["original_shape"] == (12, 60, 80) and attrs["original_spacing"] == (5.0, 1.0, 1.0)
    assert attrs["pad_before"] == (0, 8, 0)
    # padding is air (0), water (0 HU) maps to ~128 ((0 + 1000) / 2000 * 255)
    assert (arr[:, :8] == 0).all() and (arr[:, -8:] == 0).all()
    assert abs(int(np.median(arr[20:30, 25:40, 30:40])) - 128) <= 1
    # the marker lands where the affine says: back to the world, it is superior-anterior-right of the centre
    hot = np.argwhere(arr > 200).mean(axis=0)
    lps = attrs["affine_lps_zyx"] @ np.append(hot, 1.0)
    expected = vol.world(np.argwhere(vol.array == 800).mean(axis=0))
    np.testing.assert_allclose(lps[:3], expected, atol=step)
    # b2u: index grows towards S, rows towards A, columns towards R
    assert hot[0] > target[0] / 2 and hot[1] > target[1] / 2 and hot[2] > target[2] / 2
    # the NIfTI affine is the same mapping in (x, y, z) index order and RAS
    ras = attrs["affine_ras_xyz"] @ np.append(hot[::-1], 1.0)
    np.testing.assert_allclose(ras[:3], lps[:3] * [-1, -1, 1], atol=1e-6)


def test_slice_order_u2b_flips_the_slice_axis_only() -> None:
    vol = _phantom()
    b2u, _ = to_clip_array(vol, target_shape=(48, 64, 64))
    u2b, attrs = to_clip_array(vol, target_shape=(48, 64, 64), slice_order="u2b")
    assert attrs["axcodes"] == "IAR" and attrs["nifti_axcodes"] == "RAI"
    assert np.abs(u2b.astype(int) - b2u[::-1].astype(int)).max() <= 1
    with pytest.raises(ValueError, match="slice_order"):
        to_clip_array(vol, slice_order="up")
    with pytest.raises(ValueError, match="hu_clip"):
        to_clip_array(vol, hu_clip=(100, -100))


def _inputs(root: Path) -> None:
    """A messy input tree: nested DICOM, two series in one folder, a zip, NIfTI CT / MR, and bad inputs."""
    fac.write_ct_series(root / "site" / "p1" / "chest", n_slices=8, description="nested chest")
    two = root / "two_series"
    fac.write_ct_series(two, n_slices=6, description="soft", kernel="B30f")
    fac.write_ct_series(two, n_slices=9, description="sharp", kernel="B70f")
    fac.write_ct_series(root / "tmp_zip_src", n_slices=5, description="zipped")
    fac.make_zip(root / "tmp_zip_src", root / "archive.zip")
    for f in (root / "tmp_zip_src").iterdir():
        f.unlink()
    (root / "tmp_zip_src").rmdir()
    ct = np.full((10, 40, 40), -1000, np.int16)
    ct[2:8, 10:30, 10:30] = 60
    ct[4, 15, 15] = 1500
    (root / "nifti").mkdir()
    ctlens.save(Volume(ct, spacing=(3.0, 0.8, 0.8)), root / "nifti" / "abdomen.nii.gz")
    mr = np.zeros((6, 30, 30), np.float32)
    mr[1:5, 5:25, 5:25] = 400.0
    ctlens.save(Volume(mr, spacing=(4.0, 1.0, 1.0), modality="MR"), root / "nifti" / "brain_mr.nii.gz")
    (root / "nifti" / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    ctlens.save(Volume(np.full((5, 8, 8), -1000, np.int16), modality="CT"), root / "nifti" / "blank.nii.gz")
    fac.write_ct_series(root / "single", n_slices=1, description="one slice")
    (root / "README.txt").write_text("not an image")


def test_export_hdf5_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _inputs(root)
    names = {s.name: s for s in discover_volumes(root)}
    assert set(names) == {
        "archive",
        "nifti__abdomen",
        "nifti__blank",
        "nifti__brain_mr",
        "nifti__broken",
        "single",
        "site__p1__chest",
        "two_series",
    }
    assert names["site__p1__chest"].kind == "dicom" and len(names["site__p1__chest"].files) == 8
    out = tmp_path / "out"
    out.mkdir()
    target = (32, 48, 48)
    report = export_hdf5(root, out / "v.h5", out / "meta.csv", target_shape=target, num_workers=2, progress=False)

    good = ["archive", "nifti__abdomen", "site__p1__chest", "two_series__s0", "two_series__s1"]
    assert report.written == good
    reasons = {name: reason for name, _, reason in report.failures}
    assert set(reasons) == {"nifti__blank", "nifti__brain_mr", "nifti__broken", "single"}
    assert "empty volume" in reasons["nifti__blank"]
    assert "not a CT" in reasons["nifti__brain_mr"]
    assert "slice" in reasons["single"]
    assert reasons["nifti__broken"]
    assert sorted(p.name for p in out.iterdir()) == ["meta.csv", "v.h5"]  # no temporary leftovers

    with h5py.File(out / "v.h5", "r") as h5:
        assert sorted(h5.keys()) == good
        assert h5.attrs["format"] == "ctlens-clip-volumes" and int(h5.attrs["format_version"]) == 1
        assert tuple(h5.attrs["target_shape"]) == target and h5.attrs["nifti_axcodes"] == "RAS"
        assert int(h5.attrs["n_volumes"]) == len(good)
        assert {f["name"] for f in json.loads(h5.attrs["failures"])} == set(reasons)
        for name in good:
            ds = h5[name]
            assert ds.shape == target and ds.dtype == np.uint8
            assert ds.attrs["slice_order"] == "b2u" and tuple(ds.attrs["hu_clip"]) == (-1000.0, 1000.0)
            assert not str(ds.attrs["source"]).startswith("/")
        assert tuple(h5["two_series__s0"].attrs["original_shape"])[0] == 9  # series sorted by size: sharp first
        # the NIfTI CT: soft tissue 60 HU -> (60 + 1000) / 2000 * 255 = 135
        abdomen = h5["nifti__abdomen"][()]
        assert abs(int(np.median(abdomen[abdomen > 100])) - 135) <= 2
        assert str(h5["site__p1__chest"].attrs["source"]) == "site/p1/chest"

    rows = list(csv.DictReader((out / "meta.csv").open()))
    assert tuple(rows[0]) == METADATA_COLUMNS
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == set(good) | set(reasons)
    assert by_name["site__p1__chest"]["status"] == "ok" and by_name["site__p1__chest"]["kernel"] == "B30f"
    assert by_name["site__p1__chest"]["original_shape"] == "8 32 32"
    assert by_name["single"]["status"] == "failed"
    # nothing that identifies the patient leaves the process
    blob = (out / "v.h5").read_bytes() + (out / "meta.csv").read_bytes()
    for phi in (b"Synthetic^Patient", b"SYN-PAT-001", b"19700101", b"Nowhere Hospital", str(tmp_path).encode()):
        assert phi not in blob


def test_export_fails_fast_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(InputNotFoundError, match="no volumes found"):
        export_hdf5(tmp_path / "in", tmp_path / "v.h5", num_workers=0, progress=False)
    fac.write_ct_series(tmp_path / "in" / "s", n_slices=4)
    with pytest.raises(InputNotFoundError, match="does not exist"):
        export_hdf5(tmp_path / "in", tmp_path / "v.h5", tmp_path / "missing" / "m.csv", num_workers=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
