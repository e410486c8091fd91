"""The web page in headless Chromium: log in, upload a shared series, scroll, heatmap, ask, streamed answer.

The NiiVue viewer itself (planes, orientation, window/level, series picker) is tested in test_viewer_browser.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared_data import data_dir

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.mark.shared_data
def test_page_login_upload_scroll_heatmap_chat(server, browser, tmp_path):
    series = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B70f_8mm"
    if not series.is_dir():
        pytest.skip(f"{series} not in the shared data")
    # bypass_csp: Playwright evaluates its wait predicates as strings, which the page's strict CSP forbids
    page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.base_url + "/")
    page.fill("#key", "ctl_wrong")
    page.click("#login-btn")
    page.wait_for_function("document.getElementById('login-error').textContent.includes('refused')")
    page.fill("#key", server.key)
    page.click("#login-btn")
    page.wait_for_selector("#app:not(.hidden)")
    page.screenshot(path=str(tmp_path / "1-login.png"))

    page.set_input_files("#file-input", sorted(str(p) for p in series.iterdir()))
    page.wait_for_function("Number(document.getElementById('viewer').dataset.loaded) >= 1", timeout=120_000)
    assert "Region" in page.inner_text("#findings") or "Analysis" in page.inner_text("#findings")
    assert page.locator("#studies li").count() >= 1
    page.screenshot(path=str(tmp_path / "2-uploaded.png"))

    # wheel over the axial plane scrolls one slice per notch, back and forth
    page.wait_for_function("document.getElementById('viewer').dataset.overlays !== undefined", timeout=60_000)
    viewer = page.locator("#viewer")
    start = int(viewer.get_attribute("data-slice"))
    tiles = page.evaluate("window.ctlensViewer.state().tiles")
    x, y, w, h = next(t["rect"] for t in tiles if t["view"] == "axial")
    box = viewer.bounding_box()
    cx, cy = box["x"] + x + w / 2, box["y"] + y + h / 2
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, 120)
    page.wait_for_function(f"document.getElementById('viewer').dataset.slice !== '{start}'")
    step = int(viewer.get_attribute("data-slice")) - start
    assert abs(step) == 1
    page.mouse.wheel(0, -120)
    page.mouse.wheel(0, -120)
    page.wait_for_function(f"document.getElementById('viewer').dataset.slice === '{start - step}'")
    assert page.inner_text("#slice-label").startswith(f"slice {start - step + 1} / ")

    if not page.locator("#toggle-heatmap").is_disabled():
        page.uncheck("#toggle-heatmap")
        page.wait_for_function("!document.getElementById('viewer').dataset.overlay.includes('heatmap')")
        page.check("#toggle-heatmap")
        page.wait_for_function("document.getElementById('viewer').dataset.overlay.includes('heatmap')")
    page.select_option("#window-select", "bone")
    page.wait_for_function("document.getElementById('viewer').dataset.window === 'bone'")
    page.click("#tools button[data-tool=measure]")
    page.mouse.move(cx - w * 0.2, cy)
    page.mouse.down()
    page.mouse.move(cx + w * 0.2, cy, steps=4)
    page.mouse.up()
    page.wait_for_function("document.getElementById('measure').textContent.includes(' mm')")
    page.screenshot(path=str(tmp_path / "3-heatmap.png"))

    page.fill("#chat-input", "Where is the largest candidate?")
    page.click("#chat-send")
    page.wait_for_selector(".msg.assistant[data-state=done]", timeout=60_000)
    answer = page.locator(".msg.assistant").last.inner_text()
    assert "offline" in answer and "Candidates" in answer or "analysis" in answer
    assert "tokens" in page.inner_text("#chat-usage")
    overflow = page.eval_on_selector(".msg.assistant:last-child", "m => m.scrollWidth - m.clientWidth")
    assert overflow <= 0, f"the answer runs {overflow} px past its box"  # long lines wrap
    page.screenshot(path=str(tmp_path / "4-chat.png"))
    assert not errors, errors
    assert all(
        (tmp_path / f).stat().st_size > 0 for f in ("1-login.png", "2-uploaded.png", "3-heatmap.png", "4-chat.png")
    )
    page.close()


@pytest.mark.shared_data
def test_page_shows_job_progress_for_a_large_upload(browser, tmp_path):
    from live_server import service_settings, start_server

    nifti = data_dir() / "totalsegmentator_example" / "ct_3mm.nii.gz"
    if not nifti.exists():
        pytest.skip(f"{nifti} not in the shared data")
    srv = start_server(service_settings(tmp_path / "svc", job_threshold_bytes=1000))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        page.goto(srv.base_url + "/")
        page.fill("#key", srv.key)
        page.click("#login-btn")
        page.wait_for_selector("#app:not(.hidden)")
        page.set_input_files("#file-input", [str(nifti)])
        page.wait_for_function(
            "['queued', 'running', 'done'].some(s => document.getElementById('job-status').textContent.startsWith(s))"
        )
        page.wait_for_function("Number(document.getElementById('viewer').dataset.loaded) >= 1", timeout=120_000)
        assert page.inner_text("#job-status").startswith("done")
        assert page.inner_text("#upload-status").startswith("uploaded 1 file(s)")
        assert page.evaluate("document.getElementById('job-progress').style.width") == "100%"
        page.screenshot(path=str(tmp_path / "job.png"))
        page.close()
    finally:
        srv.stop()


def test_page_shows_zero_shot_scores_and_chat_sees_them(browser, tmp_path):
    """With a CLIP checkpoint configured, the findings panel lists the 18 scores, highest first, as the API has them."""
    import torch
    from chest_upload import write_chest_nifti
    from live_server import service_settings, start_server

    from ctlens.models.clip3d import build_model, load_config
    from ctlens.models.clip3d.checkpoint import save_model_weights

    torch.manual_seed(0)
    checkpoint = save_model_weights(build_model(load_config("ctclip-tiny")), tmp_path / "tiny-clip")
    # a chest-like scan: the chest checkpoint scores only its training domain (issue #15)
    files = [str(write_chest_nifti(tmp_path / "upload" / "chest.nii.gz", seed=3))]
    srv = start_server(service_settings(tmp_path / "svc", clip_checkpoint=checkpoint))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(srv.base_url + "/")
        page.fill("#key", srv.key)
        page.click("#login-btn")
        page.wait_for_selector("#app:not(.hidden)")
        page.set_input_files("#file-input", files)
        page.wait_for_selector("#zero-shot summary", timeout=120_000)
        summary = page.inner_text("#zero-shot summary")
        page.click("#zero-shot summary")  # unfold
        page.screenshot(path=str(tmp_path / "zero-shot.png"))
        cells = page.eval_on_selector_all(
            "#zero-shot .zs-row", "rows => rows.map(r => [r.cells[0].textContent, r.cells[2].textContent])"
        )
        shown = [(name, value) for name, value in cells]
        assert "not a diagnosis" in page.inner_text("#zero-shot")

        (study,) = srv.client().get("/api/studies").json()["studies"]
        probs = srv.client().get(f"/api/studies/{study['id']}").json()["zero_shot"]["probabilities"]
        expected = sorted(probs.items(), key=lambda kv: -kv[1])
        assert len(shown) == len(probs) == 18
        assert [name for name, _ in shown] == [name for name, _ in expected]
        assert [float(v) for _, v in shown] == [round(p, 2) for _, p in expected]
        assert "tiny-clip" in summary and expected[0][0] in summary

        page.fill("#chat-input", "What do the model scores say?")
        page.click("#chat-send")
        page.wait_for_selector(".msg.assistant[data-state=done]", timeout=60_000)
        answer = page.locator(".msg.assistant").last.inner_text()
        assert "Zero-shot CLIP scores" in answer and expected[0][0] in answer  # the offline answer quotes its context
        assert not errors, errors
        page.close()
    finally:
        srv.stop()
