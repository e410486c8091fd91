"""Decompression bombs are refused before they expand: a 255 KB ``.nii.gz`` of 256 MiB, a zip of 300 small members
of zeros (no small-member exemption), a zip of 10,000 members, a NRRD whose header declares 100x its compressed
voxels. The server (in this process) must not grow by 1 GiB of memory nor use 100 MiB of disk at any moment:
the file system is sampled in a thread while the request runs."""

from __future__ import annotations

import gzip
import io
import zipfile

import hostile
import pytest
from live_server import service_settings, start_server

MIB = 1 << 20


@pytest.fixture(scope="module")
def bomb_server(tmp_path_factory):
    srv = start_server(service_settings(tmp_path_factory.mktemp("bombs")))
    yield srv
    srv.stop()


def _post_watched(srv, name: str, body: bytes):
    with hostile.Watcher(srv.ctx.root) as watch:
        r = srv.client().post("/api/analyze", files={"files": (name, body)})
    return r, watch


def _nothing_left(srv) -> None:
    assert not any(srv.ctx.tmp_dir.iterdir()) and not any(srv.ctx.content_root.iterdir())
    assert srv.client().get("/api/studies").json()["studies"] == []


def test_gzip_bomb_is_refused_without_expanding(bomb_server):
    bomb = hostile.gzip_bomb_nifti(256)
    assert len(bomb) < 300_000
    r, watch = _post_watched(bomb_server, "scan.nii.gz", bomb)
    assert r.status_code == 413 and "expands beyond 100x" in r.json()["detail"], r.text
    assert "scan.nii.gz" in r.json()["detail"]
    assert watch.rss_growth < 1 << 30 and watch.disk_growth < 100 * MIB, (watch.rss_growth, watch.disk_growth)
    _nothing_left(bomb_server)


def test_small_member_zip_bomb_is_refused_before_writing(bomb_server):
    bomb = hostile.small_member_zip_bomb(300, MIB)
    assert len(bomb) < 400_000
    r, watch = _post_watched(bomb_server, "series.zip", bomb)
    assert r.status_code == 422 and "expands beyond" in r.json()["detail"], r.text
    assert watch.rss_growth < 1 << 30 and watch.disk_growth < 100 * MIB, (watch.rss_growth, watch.disk_growth)
    _nothing_left(bomb_server)


def test_zip_member_count_is_capped_like_files(bomb_server):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i in range(10_000):
            z.writestr(f"{i}.dcm", b"x")
    r = bomb_server.client().post("/api/analyze", files={"files": ("many.zip", buf.getvalue())})
    assert r.status_code == 422 and "10000 members" in r.json()["detail"], r.text
    _nothing_left(bomb_server)


def test_nrrd_declaring_more_than_its_budget_is_refused(bomb_server):
    voxels = gzip.compress(bytes(64 * MIB), 9)
    head = b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 512 512 256\nencoding: gzip\n\n"
    r, watch = _post_watched(bomb_server, "bomb.nrrd", head + voxels)
    assert r.status_code == 413 and "bomb.nrrd" in r.json()["detail"], r.text
    assert watch.rss_growth < 1 << 30 and watch.disk_growth < 100 * MIB
    _nothing_left(bomb_server)


def test_budget_is_configurable(tmp_path):
    srv = start_server(service_settings(tmp_path, max_archive_ratio=2000))
    try:
        r = srv.client().post("/api/analyze", files={"files": ("s.zip", hostile.small_member_zip_bomb(3, MIB))})
        assert r.status_code == 422 and "no DICOM file" in r.json()["detail"]  # unpacked, then judged by content
    finally:
        srv.stop()
