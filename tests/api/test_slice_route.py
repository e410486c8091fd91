"""The slice route as served by its lean handler (ctlens.api.lean_route, ctlens.api.routes.exports), through the real
service on loopback: every window and overlay decodes to the display rule's pixels (the float blend, not the fast
tables), byte for byte the PNG of ``render_slice``; bad requests get the reason (401 / 404 / 422, never a 500);
the route is still documented and still needs a key."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image
from starlette.requests import Request

from ctlens.api.artifacts import load_artifacts
from ctlens.api.slice_png import OVERLAYS, WINDOW_NAMES, render_slice
from ctlens.core.errors import ServiceError
from ctlens.preprocess import slice_render


@pytest.fixture(scope="module")
def study(server, tmp_path_factory):
    """Five real CT slices stored in another axis order (a NIfTI written RAS), analysed by the live server."""
    import ctlens
    from ctlens.preprocess.orientation import reorient
    from shared_data import data_dir

    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B70f_8mm"
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    volume = ctlens.load(folder)
    small = reorient(volume.with_array(np.ascontiguousarray(volume.array[13:18])), "RAS")
    path = tmp_path_factory.mktemp("route") / "chest_ras.nii.gz"
    ctlens.save(small, path)
    with server.client() as client:
        r = client.post("/api/analyze", files=[("files", (path.name, path.read_bytes()))])
    assert r.status_code == 200, r.text
    return r.json()


def _rule(art, k: int, window: str, overlay: str) -> np.ndarray:
    """The display rule for slice ``k`` of the stored (display-ordered) arrays: the CT window, then the float
    blend of heatmap and ROI outline (``_compose_float``, the rule the fast tables were made from)."""
    grey = slice_render.window_pixels(np.asarray(art.volume.array[k]), window, art.volume.modality)
    heat = art.heatmap[k] if overlay in ("heatmap", "both") and art.heatmap is not None else None
    roi = art.roi[k] if overlay in ("roi", "both") and art.roi is not None else None
    if heat is None and roi is None:
        return grey
    return slice_render._compose_float(grey, None if heat is None else np.asarray(heat), roi)


def test_every_window_and_overlay_is_the_display_rule_and_render_slices_bytes(server, study) -> None:
    art = load_artifacts(server.ctx.content_dir(study["sha256"]))
    n = art.volume.array.shape[0]
    assert art.heatmap is not None or art.roi is not None, "the analysis left no overlay to check"
    with server.client() as client:
        for k in range(n):
            for window in WINDOW_NAMES:
                for overlay in OVERLAYS:
                    r = client.get(
                        f"/api/studies/{study['id']}/slices/{k}.png", params={"window": window, "overlay": overlay}
                    )
                    assert r.status_code == 200, r.text
                    assert r.headers["content-type"] == "image/png"
                    assert r.headers["cache-control"] == "private, max-age=3600"
                    got = np.asarray(Image.open(io.BytesIO(r.content)))
                    assert np.array_equal(got, _rule(art, k, window, overlay)), (k, window, overlay)
                    expected = render_slice(
                        art.volume.array,
                        k,
                        window=window,
                        modality=art.volume.modality,
                        overlay=overlay,
                        heatmap=art.heatmap,
                        roi=art.roi,
                    )
                    assert r.content == expected, (k, window, overlay)


def test_defaults_and_repeated_parameters(server, study) -> None:
    art = load_artifacts(server.ctx.content_dir(study["sha256"]))
    with server.client() as client:
        plain = client.get(f"/api/studies/{study['id']}/slices/2.png")
        assert plain.status_code == 200
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(plain.content))), _rule(art, 2, "auto", "none"))
        # a repeated query parameter: the last one counts (as FastAPI reads a single-valued parameter)
        twice = client.get(f"/api/studies/{study['id']}/slices/2.png?window=bone&window=lung")
        lung = client.get(f"/api/studies/{study['id']}/slices/2.png?window=lung")
        assert twice.status_code == 200 and twice.content == lung.content
        assert client.get(f"/api/studies/{study['id']}/slices/+2.png").content == plain.content


@pytest.mark.parametrize(
    ("k", "status", "reason"),
    [
        ("abc", 422, "not an integer"),
        ("1.5", 422, "not an integer"),
        ("", 404, ""),  # no slice index: no route
        ("9" * 200, 422, "not an integer"),  # never a 500 from an enormous number
        ("-1", 404, "does not exist"),
        ("5", 404, "does not exist"),
        ("99999999", 404, "does not exist"),
    ],
)
def test_bad_slice_index_gets_the_reason(server, study, k, status, reason) -> None:
    with server.client() as client:
        r = client.get(f"/api/studies/{study['id']}/slices/{k}.png")
    assert r.status_code == status, r.text
    assert reason in r.text
    if status == 422:
        assert r.headers["content-type"].startswith("application/problem+json")


def test_keys_are_checked_and_studies_stay_their_owners(server, study) -> None:
    url = f"/api/studies/{study['id']}/slices/0.png"
    with server.client(None) as anonymous:
        assert anonymous.get(url).status_code == 401
    with server.client("ctl_not_a_real_key") as wrong:
        assert wrong.get(url).status_code == 401
    other = server.ctx.create_key("someone else")
    with server.client(other) as theirs:
        r = theirs.get(url)
        assert r.status_code == 404 and study["id"] in r.text
        # another key's study is 404 before the slice index is even read
        assert theirs.get(f"/api/studies/{study['id']}/slices/abc.png").status_code == 404
    with server.client() as mine:
        assert mine.get("/api/studies/st_nope/slices/0.png").status_code == 404


def test_route_is_documented_with_its_parameters_and_key(server) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/studies/{study_id}/slices/{k}.png"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) >= {"study_id", "k", "window", "overlay"}
    assert params["k"]["schema"]["type"] == "integer"
    assert "image/png" in op["responses"]["200"]["content"]
    assert op.get("security"), "the route no longer says it needs a key"


def test_calling_key_without_the_gate_checks_the_headers(server) -> None:
    """An app without the auth gate: the lean handler checks the key itself (401 without one)."""
    from ctlens.api.lean_route import calling_key

    class App:
        class state:  # noqa: N801 - the attribute Starlette reads
            ctx = server.ctx

    scope = {"type": "http", "headers": [], "client": ("127.0.0.1", 1), "app": App, "state": {}}
    with pytest.raises(ServiceError) as refused:
        asyncio.run(calling_key(Request(scope)))
    assert refused.value.status == 401
    key = server.ctx.create_key("direct")
    scope = {**scope, "headers": [(b"authorization", f"Bearer {key}".encode())], "state": {}}
    caller = asyncio.run(calling_key(Request(scope)))
    assert caller.name == "direct"
