"""Uploads are self-contained: no header may make the service read a file that did not arrive with the upload.

Each variant names a secret outside the upload (an absolute path, ``../`` up to the service's own key pepper,
a padded header, the MetaImage comment trick, a header inside a zip pointing out of the zip's folder, a link in a
zip). Each is refused with 422 before any library opens it; no study holds the secret's bytes afterwards; the
error body shows no server path. A zip that holds a header and its own data file is analysed.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from ctlens.core.volume import Volume
from ctlens.io import save

SECRET = b"TOP-SECRET-OTHER-TENANT-" * 40  # 960 bytes = 8 x 10 x 12 uint8


def _nrrd(field: str, *, extra: str = "", attached: bool = False) -> bytes:
    head = f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 12 10 8\nencoding: raw\n{extra}{field}\n"
    return head.encode() + (b"\n" + bytes(960) if attached else b"")


def _mha(*lines: str) -> bytes:
    head = ["ObjectType = Image", "NDims = 3", "DimSize = 12 10 8", "ElementType = MET_UCHAR", *lines]
    return ("\n".join(head) + "\n").encode() + bytes(960)


def _zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            z.writestr(info, target)
    return buf.getvalue()


def _variants(secret: str) -> dict[str, tuple[str, bytes]]:
    """name -> (uploaded file name, body); ``secret`` is the absolute path of a file outside the upload."""
    return {
        "nrrd absolute": ("scan.nrrd", _nrrd(f"data file: {secret}", attached=True)),
        "nhdr absolute": ("scan.nhdr", _nrrd(f"datafile: {secret}")),
        "nhdr ../ to the pepper": ("scan.nhdr", _nrrd("data file: ../../pepper")),
        "nhdr LIST": ("scan.nhdr", _nrrd("data file: LIST 3") + f"{secret}\n".encode()),
        "nhdr printf": ("scan.nhdr", _nrrd("data file: ../../secret%d.raw 1 1 1 3")),
        "nrrd padded header": ("scan.nrrd", _nrrd(f"data file: {secret}", extra="# " + "p" * 300_000 + "\n")),
        "mha comment trick": ("scan.mha", _mha("Comment = ElementDataFile = LOCAL", f"ElementDataFile = {secret}")),
        "mha padded comments": ("scan.mha", _mha(*[f"Comment = {'c' * 400}"] * 20, f"ElementDataFile = {secret}")),
        "mhd colon": ("scan.mhd", _mha(f"ElementDataFile: {secret}")),
        "zip: nhdr out of its folder": ("s.zip", _zip({"series/v.nhdr": _nrrd("data file: ../../../../pepper")})),
        "zip: mhd absolute": ("s.zip", _zip({"v.mhd": _mha(f"ElementDataFile = {secret}")})),
        "zip: link to the secret": ("s.zip", _zip({"v.nhdr": _nrrd("data file: v.raw")}, {"v.raw": secret})),
    }


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret1.raw").write_bytes(SECRET)
    path = folder / "secret.raw"
    path.write_bytes(SECRET)
    return path


def _stored_bytes(ctx) -> bytes:
    """Every byte the service stores for studies (content folders and temp), to look for the secret in."""
    out = b""
    for folder in (ctx.content_root, ctx.tmp_dir):
        for p in folder.rglob("*"):
            if p.is_file():
                out += p.read_bytes()
    return out


@pytest.mark.parametrize("case", list(_variants("/x")))
def test_file_inclusion_is_refused(server, secret_file, case):
    pepper = (server.ctx.root / "pepper").read_bytes() if (server.ctx.root / "pepper").exists() else None
    name, body = _variants(str(secret_file))[case]
    client = server.client()
    studies = client.get("/api/studies").json()["studies"]
    r = client.post("/api/analyze", files={"files": (name, body)})
    assert r.status_code == 422, (case, r.status_code, r.text)
    detail = r.json()["detail"]
    assert name.split(".")[0] in detail, detail  # the user's own file name
    for server_path in (str(server.ctx.root), str(secret_file.parent), "/tmp", "/etc"):
        assert server_path not in r.text, (case, r.text)
    assert client.get("/api/studies").json()["studies"] == studies
    stored = _stored_bytes(server.ctx)
    assert SECRET[:200] not in stored and (pepper is None or pepper not in stored)
    assert not any(server.ctx.tmp_dir.iterdir())


def test_a_zip_with_a_header_and_its_own_data_file_is_analysed(server, tmp_path):
    vol = Volume(np.random.default_rng(3).integers(-1000, 400, (8, 24, 24)).astype(np.int16), spacing=(2, 1, 1))
    save(vol, tmp_path / "ct.mhd")
    raw = next(p for p in tmp_path.iterdir() if p.suffix != ".mhd")
    body = _zip({"study/ct.mhd": (tmp_path / "ct.mhd").read_bytes(), f"study/{raw.name}": raw.read_bytes()})
    r = server.client().post("/api/analyze", files={"files": ("ct.zip", body)})
    assert r.status_code == 200, r.text
    study = r.json()
    assert study["status"] == "ready" and tuple(study["shape"]) == vol.shape
    assert not any(server.ctx.tmp_dir.iterdir())
