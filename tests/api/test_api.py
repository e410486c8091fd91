"""The service over real HTTP (uvicorn on 127.0.0.1): keys, uploads of the shared series, cache, studies."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from live_server import service_settings, start_server
from PIL import Image

from shared_data import data_dir

B70F = ("lung_pet_ct_dx", "Lung_Dx-A0002", "series_B70f_8mm")
B40F = ("lung_pet_ct_dx", "Lung_Dx-A0002", "series_B40f_8mm")


def _series_files(*parts: str) -> list[Path]:
    folder = data_dir().joinpath(*parts)
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    return sorted(p for p in folder.iterdir() if p.is_file())


def _zip_of(files: list[Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, f"patient/study/{p.name}")
    return buf.getvalue()


def _nifti() -> Path:
    path = data_dir() / "totalsegmentator_example" / "ct_3mm.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not in the shared data")
    return path


PROTECTED = [
    ("GET", "/api/studies"),
    ("GET", "/api/studies/st_x"),
    ("GET", "/api/studies/st_x/slices/0.png"),
    ("GET", "/api/studies/st_x/volume.nii.gz"),
    ("GET", "/api/studies/st_x/payload"),
    ("GET", "/api/studies/st_x/compressed.ctz"),
    ("DELETE", "/api/studies/st_x"),
    ("GET", "/api/jobs/job_x"),
    ("POST", "/api/analyze"),
    ("POST", "/api/chat"),
    ("POST", "/process-image"),
    ("GET", "/metrics"),
    ("GET", "/api/me"),
]


def test_every_route_but_health_and_page_needs_a_key(server):
    anonymous = server.client(key=None)
    wrong = server.client(key="ctl_not-a-real-key")
    for method, path in PROTECTED:
        for client in (anonymous, wrong):
            r = client.request(method, path)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == 401 and r.headers["www-authenticate"] == "Bearer"
    for path in ("/healthz", "/readyz", "/"):
        assert anonymous.get(path).status_code == 200
    assert server.client().get("/api/me").json()["name"] == "test"


@pytest.mark.shared_data
def test_dicom_files_upload_then_cache_hit(server):
    files = _series_files(*B70F)
    client = server.client()
    body = [("files", (f"{i}.dcm", p.read_bytes(), "application/dicom")) for i, p in enumerate(files)]
    t0 = time.perf_counter()
    first = client.post("/api/analyze", files=body)
    t_first = time.perf_counter() - t0
    assert first.status_code == 200, first.text
    study = first.json()
    assert study["status"] == "ready" and not study["cached"]
    assert study["shape"] == [len(files), 512, 512] and study["modality"] == "CT"
    assert [s["kernel"] for s in study["series"]] == ["B70f"]
    assert study["analysis"]["status"] in ("done", "unavailable", "failed")
    if study["analysis"]["status"] == "done":
        assert isinstance(study["findings"]["candidates"], list) and study["has_heatmap"]
    t0 = time.perf_counter()
    again = client.post("/api/analyze", files=list(reversed(body)))  # same bytes, any order
    t_again = time.perf_counter() - t0
    assert again.status_code == 200 and again.json()["cached"] and again.json()["id"] == study["id"]
    assert t_again < t_first, (t_again, t_first)
    metrics = client.get("/metrics").text
    assert "ctlens_cache_hits_total 1.0" in metrics or "ctlens_cache_hits_total" in metrics


@pytest.mark.shared_data
def test_zip_upload_slices_exports_and_other_keys(server):
    client = server.client()
    r = client.post("/api/analyze", files={"files": ("study.zip", _zip_of(_series_files(*B40F)), "application/zip")})
    assert r.status_code == 200, r.text
    study = r.json()
    assert study["kind"] == "dicom" and study["series"][0]["kernel"] == "B40f" and study["shape"][0] >= 20
    sid = study["id"]
    k = study["shape"][0] // 2
    lung = client.get(f"/api/studies/{sid}/slices/{k}.png", params={"window": "lung"})
    soft = client.get(f"/api/studies/{sid}/slices/{k}.png", params={"window": "soft_tissue"})
    assert lung.status_code == soft.status_code == 200 and lung.headers["content-type"] == "image/png"
    a, b = (np.asarray(Image.open(io.BytesIO(x.content))) for x in (lung, soft))
    assert a.shape == (512, 512) and not np.array_equal(a, b)  # the window changes the picture
    heat = client.get(f"/api/studies/{sid}/slices/{k}.png", params={"overlay": "heatmap"})
    assert heat.status_code == 200
    if study["has_heatmap"]:
        assert Image.open(io.BytesIO(heat.content)).mode == "RGB"
    assert client.get(f"/api/studies/{sid}/slices/9999.png").status_code == 404
    assert client.get(f"/api/studies/{sid}/slices/0.png", params={"window": "nope"}).status_code == 422
    nifti = client.get(f"/api/studies/{sid}/volume.nii.gz")
    assert nifti.status_code == 200
    img = nib.Nifti1Image.from_bytes(__import__("gzip").decompress(nifti.content))
    assert img.shape[::-1] == tuple(study["shape"])
    payload = client.get(f"/api/studies/{sid}/payload", params={"provider": "anthropic"})
    assert payload.status_code in (200, 503), payload.text
    if payload.status_code == 200:
        assert payload.json()["images"] and payload.json()["token_estimate"] > 0
    ctz = client.get(f"/api/studies/{sid}/compressed.ctz")
    assert ctz.status_code in (200, 503), ctz.text
    audit = [e["action"] for e in client.get("/api/audit").json()["entries"]]
    assert "export" in audit and "upload" in audit and audit.count("view") == 1

    other = server.client(key=server.ctx.create_key("other"))
    for path in (f"/api/studies/{sid}", f"/api/studies/{sid}/slices/{k}.png", f"/api/studies/{sid}/volume.nii.gz"):
        assert other.get(path).status_code == 404, path
    assert other.delete(f"/api/studies/{sid}").status_code == 404
    assert sid not in [s["id"] for s in other.get("/api/studies").json()["studies"]]
    assert client.get(f"/api/studies/{sid}").status_code == 200  # still there for its owner


@pytest.mark.shared_data
def test_nifti_upload_delete_leaves_nothing(server):
    client = server.client()
    r = client.post("/api/analyze", files={"files": ("scan.bin", _nifti().read_bytes())})  # name says nothing
    assert r.status_code == 200, r.text
    study = r.json()
    assert study["kind"] == "nifti_gz" and study["shape"] == [112, 101, 122]
    folder = server.ctx.content_dir(study["sha256"])
    assert (folder / "volume.npy").exists()
    assert client.delete(f"/api/studies/{study['id']}").status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/studies/{study['id']}").status_code == 404
    assert server.ctx.store.content(study["sha256"]) is None


@pytest.mark.shared_data
def test_large_upload_runs_as_a_job(tmp_path):
    srv = start_server(service_settings(tmp_path / "svc", job_threshold_bytes=1000))
    try:
        client = srv.client()
        r = client.post("/api/analyze", files={"files": ("x.nii.gz", _nifti().read_bytes())})
        assert r.status_code == 202, r.text
        job_url = r.json()["job"]["url"]
        deadline = time.time() + 120
        while time.time() < deadline:
            job = client.get(job_url).json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert job["state"] == "done", job
        study = client.get(job["study_url"]).json()
        assert study["status"] == "ready" and study["shape"] == [112, 101, 122]
        assert not any((srv.ctx.tmp_dir).iterdir())  # the staged upload is gone
    finally:
        srv.stop()


def test_chat_without_study_is_offline_and_counts_tokens(server):
    r = server.client().post("/api/chat", data={"message": "hello"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["offline"] and "offline" in body["answer"] and body["input_tokens"] > 0 and body["cost_usd"] == 0


def test_two_series_in_one_zip_and_series_choice(server, tmp_path):
    import dicom_factory

    study_uid = "1.2.826.0.1.3680043.8.498.1"
    dicom_factory.write_ct_series(
        tmp_path / "s",
        n_slices=6,
        rows=48,
        cols=48,
        kernel="B30f",
        study_uid=study_uid,
        series_number=1,
        description="soft",
    )
    dicom_factory.write_ct_series(
        tmp_path / "s",
        n_slices=9,
        rows=48,
        cols=48,
        kernel="B70f",
        study_uid=study_uid,
        series_number=2,
        description="sharp",
        seed=3,
    )
    files = sorted((tmp_path / "s").iterdir())
    client = server.client()
    default = client.post("/api/analyze", files={"files": ("x.zip", _zip_of(files))}).json()
    assert sorted(s["kernel"] for s in default["series"]) == ["B30f", "B70f"]
    assert default["shape"][0] == 9  # the largest series by default
    chosen = client.post("/api/analyze", files={"files": ("x.zip", _zip_of(files))}, data={"series": "soft"})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["shape"][0] == 6 and chosen.json()["id"] != default["id"]
    missing = client.post("/api/analyze", files={"files": ("x.zip", _zip_of(files))}, data={"series": "nope"})
    assert missing.status_code == 422


def test_png_upload_and_process_image(server):
    yy, xx = np.mgrid[0:96, 0:128]
    image = ((np.sin(xx / 6.0) * 60 + 120) * ((yy - 48) ** 2 + (xx - 64) ** 2 < 900)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    client = server.client()
    r = client.post("/api/analyze", files={"files": ("photo.jpeg", buf.getvalue())})  # the name lies, content wins
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "png" and r.json()["shape"] == [1, 96, 128]
    processed = client.post("/process-image", files={"file": ("x.png", buf.getvalue())})
    assert processed.status_code in (200, 503), processed.text
    if processed.status_code == 200:
        body = processed.json()
        overlay = Image.open(io.BytesIO(__import__("base64").b64decode(body["overlay_png"])))
        assert overlay.size == (128, 96) and body["findings"] is not None
    assert client.post("/process-image", files={"file": ("x.nii.gz", _nifti().read_bytes())}).status_code == 415
