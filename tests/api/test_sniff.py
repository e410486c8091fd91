"""Formats are recognised from their bytes: real files written by ctlens, Pillow and the DICOM factory."""

from __future__ import annotations

import io
import zipfile

import dicom_factory
import httpx
import numpy as np
import pytest
from live_server import service_settings
from PIL import Image

from ctlens.api.app import create_app
from ctlens.api.sniff import sniff_file
from ctlens.core.volume import Volume
from ctlens.io import save


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("samples")
    vol = Volume(np.arange(4 * 20 * 24, dtype=np.int16).reshape(4, 20, 24) - 1000, spacing=(3.0, 0.8, 0.8))
    out = {}
    for name in ("v.nii.gz", "v.nii", "v.nrrd", "v.mha"):
        save(vol, folder / name)
        out[name] = folder / name
    for fmt, name in (("PNG", "i.png"), ("JPEG", "i.jpg")):
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(folder / name, fmt)
        out[name] = folder / name
    truth = dicom_factory.write_ct_series(folder / "dcm", n_slices=3, rows=16, cols=16)
    out["dcm"] = truth.paths[0]
    for name, implicit, little in (("raw-implicit", True, True), ("raw-big-endian", False, False)):
        out[name] = dicom_factory.write_raw_dataset(truth.paths[0], folder / name, implicit=implicit, little=little)
    with zipfile.ZipFile(folder / "s.zip", "w") as z:
        for p in truth.paths:
            z.write(p, p.name)
    out["zip"] = folder / "s.zip"
    return out


EXPECTED = {
    "v.nii.gz": "nifti_gz",
    "v.nii": "nifti",
    "v.nrrd": "nrrd",
    "v.mha": "mha",
    "i.png": "png",
    "i.jpg": "jpeg",
    "dcm": "dicom",
    "raw-implicit": "dicom",  # a bare dataset: no preamble, no DICM, no file meta
    "raw-big-endian": "dicom",
    "zip": "zip",
}


def test_sniff_real_files(samples, tmp_path):
    for name, kind in EXPECTED.items():
        renamed = tmp_path / f"upload-{name.replace('.', '_')}"  # names say nothing
        renamed.write_bytes(samples[name].read_bytes())
        assert sniff_file(renamed) == kind, name
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"\x1f\x8b" + b"\0" * 100)  # gzip magic but no NIfTI inside
    assert sniff_file(junk) is None
    rng = np.random.default_rng(0)
    for start in (b"\x08\x00", b"\x02\x00", b"\x00\x08"):  # a raw dataset's first bytes, then noise
        for _ in range(200):
            junk.write_bytes(start + rng.integers(0, 256, 400, dtype=np.uint8).tobytes())
            assert sniff_file(junk) is None


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(EXPECTED))
async def test_every_format_uploads(samples, tmp_path, name):
    app = create_app(service_settings(tmp_path), start_jobs=False)
    key = app.state.ctx.create_key("t")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as client:
        r = await client.post("/api/analyze", files={"files": ("anything", samples[name].read_bytes())})
        assert r.status_code == 200, r.text
        study = r.json()
        expected_kind = "dicom" if name in ("zip",) else EXPECTED[name]
        assert study["kind"] == expected_kind
        k = study["shape"][0] - 1
        png = await client.get(f"/api/studies/{study['id']}/slices/{k}.png")
        assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == tuple(study["shape"][:0:-1])


@pytest.fixture
def anyio_backend():
    return "asyncio"
