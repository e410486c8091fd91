"""Hostile uploads get a 4xx and leave nothing behind; rate limits; body-size caps; job takeover."""

from __future__ import annotations

import threading
import time

import hostile
import httpx
import pytest
from live_server import service_settings

from ctlens.api.app import create_app
from ctlens.api.jobs import JobRunner
from ctlens.api.store import Store


def _files_on_disk(ctx) -> set[str]:
    return {str(p.relative_to(ctx.root)) for p in ctx.root.rglob("*") if p.is_file() and "sqlite3" not in p.name}


HOSTILE = {
    "zip bomb": ("a.zip", hostile.zip_bomb(), 422),
    "../ entry": ("a.zip", hostile.traversal_zip(), 422),
    "symlink entry": ("a.zip", hostile.symlink_zip(), 422),
    "zip without DICOM": ("a.zip", hostile.not_dicom_zip(), 422),
    "0-byte": ("empty.dcm", b"", 422),
    "wrong magic": ("scan.dcm", b"this is a text file, not DICOM" * 50, 415),
    "pixel bomb": ("x.png", hostile.pixel_bomb_png(), (413, 422)),
    "fake DICOM": ("x.dcm", hostile.truncated_dicom(), 422),
    "bare data set, then garbage": ("x", hostile.bare_data_set_then_garbage(), 422),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_upload_is_refused_and_leaves_nothing(server, case):
    name, data, status = HOSTILE[case]
    before = _files_on_disk(server.ctx)
    studies = server.client().get("/api/studies").json()["studies"]
    r = server.client().post("/api/analyze", files={"files": (name, data)})
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), (case, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json" and r.json()["detail"]
    assert _files_on_disk(server.ctx) == before
    assert not any(server.ctx.tmp_dir.iterdir())
    assert server.client().get("/api/studies").json()["studies"] == studies
    assert not (server.ctx.root.parent / "escaped.dcm").exists()


def test_mixed_and_missing_files_are_refused(server):
    dicom = b"\0" * 128 + b"DICM" + b"\0" * 32
    png = hostile.pixel_bomb_png(4, 4)
    r = server.client().post("/api/analyze", files=[("files", ("a", dicom)), ("files", ("b", png))])
    assert r.status_code == 422 and "DICOM" in r.json()["detail"]
    r = server.client().post("/api/analyze", data={"series": "1"})
    assert r.status_code == 422
    assert not any(server.ctx.tmp_dir.iterdir())


def _asgi_client(app, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Authorization": f"Bearer {key}"}
    )


@pytest.mark.anyio
async def test_oversized_upload_and_too_many_files(tmp_path):
    app = create_app(service_settings(tmp_path, max_upload_bytes=50_000, max_upload_files=3), start_jobs=False)
    key = app.state.ctx.create_key("t")
    async with _asgi_client(app, key) as client:
        r = await client.post("/api/analyze", files={"files": ("big.nii", b"\0" * 200_000)})
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        many = [("files", (f"{i}.dcm", b"\0" * 128 + b"DICM")) for i in range(5)]
        r = await client.post("/api/analyze", files=many)
        assert r.status_code == 413, r.text  # issue #13: 413 (was 400) for too many files
        images = [("images", (f"{i}.png", b"\x89PNG\r\n\x1a\n")) for i in range(1001)]
        r = await client.post("/api/chat", data={"message": "hi"}, files=images)
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json", r.text

        async def chunked(field: str):  # no Content-Length: the limit applies while the body streams in
            yield f'--b\r\nContent-Disposition: form-data; name="{field}"; filename="a.png"\r\n\r\n'.encode()
            for _ in range(120):  # 1.2 MB: over max_upload_bytes + the multipart allowance (1 MiB)
                yield b"\0" * 10_000

        for path, field in (("/process-image", "file"), ("/api/analyze", "files")):
            headers = {"content-type": "multipart/form-data; boundary=b"}
            r = await client.post(path, content=chunked(field), headers=headers)
            assert r.status_code == 413 and "larger than the limit" in r.json()["detail"], (path, r.text)
    assert not any(app.state.ctx.tmp_dir.iterdir())


def _gzip_bomb_nifti(megabytes: int) -> bytes:
    import gzip

    import nibabel as nib
    import numpy as np

    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, megabytes * 4))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + b"\0" * (megabytes << 20)
    return gzip.compress(raw, compresslevel=9)


@pytest.mark.anyio
async def test_gzip_bomb_nifti_is_refused(tmp_path):
    app = create_app(service_settings(tmp_path, max_archive_bytes=5_000_000), start_jobs=False)
    key = app.state.ctx.create_key("t")
    bomb = _gzip_bomb_nifti(40)
    assert len(bomb) < 200_000
    async with _asgi_client(app, key) as client:
        r = await client.post("/api/analyze", files={"files": ("scan.nii.gz", bomb)})
        assert r.status_code == 413 and "expands beyond" in r.json()["detail"]
        small = _gzip_bomb_nifti(1)
        truncated = await client.post("/api/analyze", files={"files": ("scan.nii.gz", small[: len(small) // 2])})
        assert truncated.status_code == 422
    assert not any(app.state.ctx.tmp_dir.iterdir()) and not any(app.state.ctx.content_root.iterdir())


@pytest.mark.anyio
async def test_guessing_keys_is_throttled(tmp_path):
    app = create_app(service_settings(tmp_path, auth_failures_per_minute=1, auth_failures_burst=3), start_jobs=False)
    async with _asgi_client(app, "ctl_guess") as client:
        codes = [(await client.get("/api/studies")).status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401] and codes[-1] == 429


@pytest.mark.anyio
async def test_rate_limit_per_key(tmp_path):
    app = create_app(service_settings(tmp_path, rate_limit_per_minute=1, rate_limit_burst=3), start_jobs=False)
    ctx = app.state.ctx
    first, second = ctx.create_key("a"), ctx.create_key("b")
    async with _asgi_client(app, first) as a, _asgi_client(app, second) as b:
        codes = [(await a.get("/api/me")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await a.get("/api/me")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert (await b.get("/api/me")).status_code == 200  # another key has its own budget


def test_keys_are_stored_hashed(server):
    key = server.ctx.create_key("hashed")
    raw = (server.ctx.root / "ctlens.sqlite3").read_bytes()
    wal = server.ctx.root / "ctlens.sqlite3-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert key.encode() not in raw and server.ctx.key_for(key) is not None
    assert server.ctx.store.journal_mode() == "wal"


def test_a_job_survives_its_worker(tmp_path):
    """Worker A claims a job and dies (no heartbeats); worker B, another runner on the same file, finishes it."""
    db = tmp_path / "jobs.sqlite3"
    store_a, store_b = Store(db), Store(db)
    job_id = store_a.add_job("key_1", "st_1", "a" * 64, {"n": 1})
    claimed = store_a.claim_job("worker-a", lease=0.3)
    assert claimed["id"] == job_id
    assert store_b.claim_job("worker-b", lease=0.3) is None  # still leased to A
    done = threading.Event()
    runner = JobRunner(store_b, lambda job, progress: (progress(0.5, "half"), done.set()), lease=0.3, poll=0.05)
    time.sleep(0.4)  # A's lease runs out
    assert runner.run_one()
    assert done.is_set()
    job = store_b.job(job_id)
    assert job["state"] == "done" and job["worker"] == runner.worker and job["attempts"] == 2
    assert not store_a.heartbeat(job_id, "worker-a")  # A, back from the dead, no longer owns it


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_cached_is_only_told_to_the_key_that_uploaded(server, tmp_path):
    import numpy as np

    from ctlens.core.volume import Volume
    from ctlens.io import save

    save(Volume(np.random.default_rng(11).integers(-1000, 500, (6, 20, 20)).astype(np.int16)), tmp_path / "v.nrrd")
    body = {"files": ("v.nrrd", (tmp_path / "v.nrrd").read_bytes())}
    first = server.client().post("/api/analyze", files=body).json()
    again = server.client().post("/api/analyze", files=body).json()
    other = server.client(key=server.ctx.create_key("other tenant")).post("/api/analyze", files=body).json()
    assert first["cached"] is False and again["cached"] is True and again["id"] == first["id"]
    assert other["cached"] is False and other["id"] != first["id"] and other["sha256"] == first["sha256"]
