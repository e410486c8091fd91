"""The viewer's service side over real HTTP: overlay NIfTIs on the volume's grid, the viewer block, series choice."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from shared_data import data_dir

A0002 = ("lung_pet_ct_dx", "Lung_Dx-A0002")
KERNELS = ("series_B40f_8mm", "series_B70f_8mm")


def _files(*parts: str) -> list[Path]:
    folder = data_dir().joinpath(*parts)
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    return sorted(p for p in folder.iterdir() if p.is_file())


def _zip(groups: dict[str, list[Path]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for folder, files in groups.items():
            for p in files:
                z.write(p, f"{folder}/{p.name}")
    return buf.getvalue()


def _nifti(response) -> nib.Nifti1Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    return nib.Nifti1Image.from_bytes(gzip.decompress(response.content))


def _upload(client, content: bytes, name: str, **form) -> dict:
    r = client.post("/api/analyze", files={"files": (name, content, "application/zip")}, data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready", body
    return body


@pytest.fixture(scope="module")
def a0002_zip() -> bytes:
    return _zip({kernel: _files(*A0002, kernel) for kernel in KERNELS})


@pytest.fixture(scope="module")
def chest(server, a0002_zip) -> dict:
    return _upload(server.client(), a0002_zip, "a0002.zip")


@pytest.mark.shared_data
def test_overlays_share_the_volume_grid_and_label_lungs_and_candidates(server, chest):
    client = server.client()
    links = chest["links"]
    assert links["heatmap_volume"].endswith("/overlays/heatmap.nii.gz")
    assert links["labels_volume"].endswith("/overlays/labels.nii.gz")
    volume = _nifti(client.get(links["volume"]))
    heat_r, labels_r = client.get(links["heatmap_volume"]), client.get(links["labels_volume"])
    heat, labels = _nifti(heat_r), _nifti(labels_r)
    for overlay, response in ((heat, heat_r), (labels, labels_r)):
        assert overlay.shape == volume.shape
        np.testing.assert_array_equal(overlay.affine, volume.affine)
        np.testing.assert_array_equal(overlay.get_sform(), volume.get_sform())
        assert "etag" in response.headers and "last-modified" in response.headers  # cacheable like volume.nii.gz
    assert heat.get_data_dtype() == np.float32 and labels.get_data_dtype() == np.uint8
    h = np.asarray(heat.dataobj)
    assert 0.0 <= h.min() and h.max() <= 1.0

    lab = np.asarray(labels.dataobj).transpose(2, 1, 0)  # NIfTI [x, y, z] -> the study's [z, y, x]
    assert lab.shape == tuple(chest["shape"])
    candidates = chest["findings"]["candidates"]
    assert h.max() == pytest.approx(max(c["score"] for c in candidates), abs=0.01)  # a heatmap value is a score
    assert candidates, "A0002 has a mass"
    for k, cand in enumerate(candidates, start=1):
        z, y, x = (int(round(c)) for c in cand["centre_voxel"])
        assert lab[z, y, x] == 10 + k == cand["label"]
        assert chest["viewer"]["labels"][str(10 + k)].startswith(f"candidate {k} (")
    assert {1, 2} <= set(np.unique(lab).tolist())
    right, left = (np.nonzero(lab == value)[2].mean() for value in (1, 2))
    assert right < left  # columns run from patient right to patient left in this axial series
    assert chest["viewer"]["labels"]["1"] == "right lung" and chest["viewer"]["labels"]["2"] == "left lung"


@pytest.mark.shared_data
def test_another_key_gets_404_for_the_overlays(server, chest):
    other = server.client(key=server.ctx.create_key("someone else"))
    for link in ("heatmap_volume", "labels_volume"):
        r = other.get(chest["links"][link])
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert server.client(key=None).get(chest["links"]["labels_volume"]).status_code == 401


@pytest.mark.shared_data
def test_chest_viewer_block_and_one_based_candidate_slices(server, chest):
    viewer = chest["viewer"]
    assert viewer["default_preset"] == "lung" and viewer["region"] == "chest"
    assert viewer["slice_numbering"] == "1-based"
    assert viewer["presets"]["lung"] == [1500.0, -600.0] and viewer["presets"]["brain"] == [80.0, 40.0]
    for cand in chest["findings"]["candidates"]:
        assert cand["slice_1based"] == int(round(cand["centre_voxel"][0])) + 1
        assert cand["slice_range_1based"] == [cand["slice_range"][0] + 1, cand["slice_range"][1] + 1]
        first, last = cand["slice_range_1based"]
        assert 1 <= first <= cand["slice_1based"] <= last <= chest["shape"][0]


@pytest.mark.shared_data
def test_series_field_switches_kernel(server, chest, a0002_zip):
    rows = chest["series"]
    assert len(rows) == 2 and sum(row["analysed"] for row in rows) == 1
    shown = next(row for row in rows if row["analysed"])
    other = next(row for row in rows if not row["analysed"])
    assert chest["facts"]["kernel"] == shown["kernel"] and other["kernel"] != shown["kernel"]
    assert shown["selector"] != other["selector"]  # stable keys from hashed UIDs: no UID, no description in them
    assert all(row["selector"] and "1.2." not in row["selector"] and row["part"] == "" for row in rows)
    switched = _upload(server.client(), a0002_zip, "a0002.zip", series=other["selector"])
    assert switched["id"] != chest["id"] and switched["facts"]["kernel"] == other["kernel"]
    assert [row["analysed"] for row in switched["series"]] == [not row["analysed"] for row in rows]
    again = _upload(server.client(), a0002_zip, "a0002.zip", series=shown["selector"])
    assert again["facts"]["kernel"] == shown["kernel"]


@pytest.mark.shared_data
def test_head_ct_opens_in_brain_window_with_the_readers_warnings(server):
    files = _files("dcm_qa_ct_ge", "dicom")
    body = _upload(server.client(), _zip({"head": files}), "head.zip")
    viewer = body["viewer"]
    assert viewer["default_preset"] == "brain" and viewer["region"] == "head"
    text = " | ".join(viewer["warnings"])
    assert "gantry tilt of 18.50 degrees corrected" in text and "resampled 28 unevenly spaced slices" in text
    assert "/" not in text and not any(p.name in text for p in files)


def test_no_heatmap_is_a_404_problem_and_a_roi_is_label_1(server, tmp_path):
    from ctlens.core.volume import Volume
    from ctlens.io import save

    water = np.full((12, 48, 48), -1000, np.int16)
    water[:, 8:40, 8:40] = 40  # a water box: CT with a body but no organ the analysis knows
    path = tmp_path / "water.nii.gz"
    save(Volume(water, spacing=(5.0, 1.0, 1.0)), path)
    client = server.client()
    r = client.post("/api/analyze", files={"files": ("water.nii.gz", path.read_bytes())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["viewer"]["default_preset"] == "soft_tissue" and body["links"]["heatmap_volume"] is None
    missing = client.get(f"/api/studies/{body['id']}/overlays/heatmap.nii.gz")
    assert missing.status_code == 404 and "no heatmap" in missing.json()["detail"]
    lab = np.asarray(_nifti(client.get(body["links"]["labels_volume"])).dataobj).transpose(2, 1, 0)
    assert lab[6, 20, 20] == 1 and lab[6, 2, 2] == 0 and set(np.unique(lab).tolist()) == {0, 1}
    assert body["viewer"]["labels"] == {"1": "region of interest"}
