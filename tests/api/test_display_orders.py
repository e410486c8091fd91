"""Issue 14's display rule end to end: one real DICOM series, the same voxels as NIfTI in nine storage orders and
one oblique NIfTI, each uploaded to the real service on loopback and run through ``ctlens payload`` and
``ctlens analyze --overlays``: slice k of every rendering equals slice k of the DICOM rendering, and the DICOM
rendering keeps the pixels' own orientation (anterior at the top, the patient's left on the image's right).

The NIfTI affines are checked against SimpleITK: reading each file with SimpleITK gives what ``sitk.DICOMOrient``
makes of the DICOM series read by SimpleITK, array and geometry.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ctlens.cli.main import app
from ctlens.core.volume import Volume
from ctlens.preprocess.orientation import reorient
from shared_data import data_dir

ORDERS = ("RAS", "LPS", "LAS", "LPI", "PRS", "SRA", "ASL", "IRP", "RIA")
"""NIfTI-order codes (where array axes x, y, z point), as nibabel and SimpleITK's DICOMOrient write them."""
N_SLICES = 6


def _series() -> list[Path]:
    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    import pydicom

    files = [p for p in folder.iterdir() if p.is_file()]
    by_z = sorted(files, key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    middle = len(by_z) // 2
    return by_z[middle - N_SLICES // 2 : middle - N_SLICES // 2 + N_SLICES]  # a small real series: 6 chest slices


def _oblique(volume: Volume, degrees: float = 4.0) -> Volume:
    t = np.radians(degrees)
    about_x = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    return Volume(volume.array, spacing=volume.spacing, origin=volume.origin, direction=about_x @ volume.direction)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """``{"dicom": folder, "RAS": file.nii.gz, ..., "oblique": file.nii.gz}``; each NIfTI checked by SimpleITK."""
    import shutil

    import ctlens

    sitk = pytest.importorskip("SimpleITK")
    root = tmp_path_factory.mktemp("orders")
    dicom = root / "dicom"
    dicom.mkdir()
    for i, f in enumerate(_series()):
        shutil.copy(f, dicom / f"slice{i:02d}.dcm")
    volume = ctlens.load(dicom)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(dicom)))
    itk = reader.Execute()
    out = {"dicom": dicom}
    for order in ORDERS:
        path = root / f"ct_{order}.nii.gz"
        ctlens.save(reorient(volume, order), path)
        want, got = sitk.DICOMOrient(itk, order), sitk.ReadImage(str(path))
        assert np.array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(want).astype(np.int16)), order
        assert np.allclose(got.GetDirection(), want.GetDirection(), atol=1e-5), order
        assert np.allclose(got.GetOrigin(), want.GetOrigin(), atol=1e-3), order
        assert np.allclose(got.GetSpacing(), want.GetSpacing(), atol=1e-4), order
        out[order] = path
    out["oblique"] = root / "ct_oblique.nii.gz"
    ctlens.save(reorient(_oblique(volume), "RAS"), out["oblique"])
    return out


def _upload(client, path: Path) -> dict:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    study = client.post("/api/analyze", files=[("files", (p.name, p.read_bytes())) for p in files])
    assert study.status_code == 200, study.text
    return study.json()


def _png(client, study: dict, k: int) -> np.ndarray:
    response = client.get(f"/api/studies/{study['id']}/slices/{k}.png", params={"window": "soft_tissue"})
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_service_slices_of_every_storage_order_equal_the_dicom_slices(server, inputs) -> None:
    import pydicom

    from ctlens.preprocess.windows import to_display_uint8, window_limits

    with server.client() as client:
        reference = _upload(client, inputs["dicom"])
        dicom_pngs = [_png(client, reference, k) for k in range(N_SLICES)]
        # the DICOM rendering keeps the pixels' own orientation: this series is stored row = posterior-ward,
        # column = patient-left-ward (IOP 1,0,0,0,1,0), so slice k is the k-th file from the feet, drawn as stored
        for k, f in enumerate(sorted(inputs["dicom"].iterdir())):
            ds = pydicom.dcmread(f)
            assert [round(float(v)) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert np.array_equal(dicom_pngs[k], to_display_uint8(hu, *window_limits("soft_tissue"))), k
        for name in (*ORDERS, "oblique"):
            study = _upload(client, inputs[name])
            for k in range(N_SLICES):
                assert np.array_equal(_png(client, study, k), dicom_pngs[k]), f"{name}: slice {k + 1} differs"
            if name == "oblique":
                warnings = " ".join(client.get(f"/api/studies/{study['id']}").json().get("reader_warnings") or [])
                assert "oblique" in warnings.lower(), warnings


def _payload_tiles(result_json: Path) -> dict[tuple, np.ndarray]:
    """``{(slice_index, window, kind): tile pixels}`` of a payload JSON (images decoded from its request body)."""
    data = json.loads(result_json.read_text())
    found = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "base64" and "data" in node:
                found.append(node["data"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data["request"])
    assert len(found) == len(data["images"])
    tiles = {}
    for record, b64 in zip(data["images"], found, strict=True):
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"))
        for t in record["tiles"]:
            x0, y0, x1, y1 = t["pixel_box"]
            tiles[(t["slice_index"], t["window"], t["kind"])] = pixels[y0:y1, x0:x1]
    return tiles, data["text"]


def test_cli_payload_and_overlays_of_every_storage_order_equal_the_dicom_ones(inputs, tmp_path) -> None:
    runner = CliRunner()

    def run(name: str) -> tuple[dict, str, np.ndarray]:
        out = tmp_path / name
        out.mkdir()
        args = ["payload", str(inputs[name]), "--out", str(out / "p.json"), "--budget", "30000", "--no-analysis"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["analyze", str(inputs[name]), "--overlays", str(out / "ov")])
        assert result.exit_code == 0, result.output
        tiles, text = _payload_tiles(out / "p.json")
        return tiles, text, np.asarray(Image.open(out / "ov" / "overlay.png").convert("RGB"))

    dicom_tiles, dicom_text, dicom_overlay = run("dicom")
    assert "top of each tile = anterior" in dicom_text and "right = left (patient)" in dicom_text
    assert {k for k, _, _ in dicom_tiles} == set(range(N_SLICES))
    for name in (*ORDERS, "oblique"):
        tiles, text, overlay = run(name)
        assert "top of each tile = anterior" in text and "right = left (patient)" in text, name
        common = set(tiles) & set(dicom_tiles)
        assert {k for k, _, kind in common if kind == "montage"} == set(range(N_SLICES)), name
        for key in common:
            assert np.array_equal(tiles[key], dicom_tiles[key]), f"{name}: payload tile {key} differs"
        if name == "oblique":
            assert "OBLIQUE" in text
        else:
            assert np.array_equal(overlay, dicom_overlay), f"{name}: the overlay PNG differs"
