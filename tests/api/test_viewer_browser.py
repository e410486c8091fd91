"""The NiiVue viewer in real headless Chromium (WebGL2 via SwiftShader) against a real server on loopback.

Checked from screenshots and from the page's state (``window.ctlensViewer.state()``, ``data-*`` on the canvas):
the planes and the 3-D view show the volume, the radiological convention with a phantom whose markers are on the
patient's left and anterior (stored RAS, not LPS), window/level by drag with its readout, the series picker, a
candidate click moving every plane, the head CT's brain window, and ``/docs`` with the network blocked.

The page runs under its real Content-Security-Policy (no ``bypass_csp``): waits poll with ``page.evaluate``.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from shared_data import data_dir

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
VENDOR = Path(__file__).resolve().parents[2] / "src" / "ctlens" / "api" / "static" / "vendor" / "niivue.js"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    if not VENDOR.exists():
        pytest.skip(f"the viewer's NiiVue module is not built ({VENDOR} missing): run `make viewer` (needs npm)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


class Page:
    """One logged-in page, collecting page errors and CSP violations."""

    def __init__(self, browser, server) -> None:
        self.server = server
        self.page = browser.new_page(viewport={"width": 1500, "height": 950})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.goto(server.base_url + "/")
        self.page.fill("#key", server.key)
        self.page.click("#login-btn")
        self.wait("document.getElementById('viewer').dataset.viewer === 'ready'", 60)

    def _console(self, msg) -> None:
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            self.errors.append(msg.text)

    def wait(self, expression: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.page.evaluate(expression):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {expression}")

    def state(self) -> dict:
        return self.page.evaluate("window.ctlensViewer.state()")

    def loaded(self, count: int, timeout: float = 180) -> dict:
        """Wait until the viewer showed its `count`-th study and its overlays and 3-D view are ready."""
        self.wait(f"Number(document.getElementById('viewer').dataset.loaded) >= {count}", timeout)
        self.wait("document.getElementById('viewer').dataset.overlays !== undefined", 60)
        self.wait("window.ctlensViewer.state().render3d.renders >= 1", 60)
        return self.state()

    def stage(self) -> np.ndarray:
        """A screenshot of the viewer's stage as an RGB array (its origin is the 2-D canvas's top-left)."""
        from PIL import Image

        self.page.evaluate("new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)))")
        png = self.page.locator("#stage").screenshot()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def close(self) -> None:
        self.page.close()


def tile(shot: np.ndarray, state: dict, view: str) -> np.ndarray:
    (rect,) = [t["rect"] for t in state["tiles"] if t["view"] == view]
    x, y, w, h = (int(round(v)) for v in rect)
    return shot[y : y + h, x : x + w]


def shows_image(pixels: np.ndarray) -> bool:
    grey = pixels.mean(axis=2)
    return bool(grey.std() > 10 and (grey > 30).mean() > 0.05)


@pytest.mark.shared_data
def test_a0002_planes_window_level_candidates_and_series_picker(server, browser):
    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002"
    series = [folder / "series_B40f_8mm", folder / "series_B70f_8mm"]
    if not all(s.is_dir() for s in series):
        pytest.skip(f"{folder} lacks the B40f/B70f series")
    files = [str(p) for s in series for p in sorted(s.iterdir())]
    ui = Page(browser, server)
    page = ui.page
    page.set_input_files("#file-input", files)
    first = ui.loaded(1)
    # upload progress and analysis progress are reported apart
    assert page.inner_text("#upload-status").startswith(f"uploaded {len(files)} file(s)")
    assert page.inner_text("#job-status").startswith("done")

    # the three planes and the 3-D view show the volume, in the chest's lung window
    assert [t["view"] for t in first["tiles"]] == ["axial", "coronal", "sagittal", "render"]
    shot = ui.stage()
    for view in ("axial", "coronal", "sagittal", "render"):
        assert shows_image(tile(shot, first, view)), f"the {view} view is blank"
    assert first["radiological"] and first["window"]["preset"] == "lung"
    assert (first["window"]["center"], first["window"]["width"]) == (-600, 1500)
    assert page.inner_text("#wl-readout") == "C -600 / W 1500 HU"

    # a window/level drag changes the displayed range and the readout
    x, y, w, h = next(t["rect"] for t in first["tiles"] if t["view"] == "axial")
    box = page.locator("#viewer").bounding_box()
    before = tile(shot, first, "axial").astype(float)
    cx, cy = box["x"] + x + w / 2, box["y"] + y + h / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 40, steps=3)
    page.mouse.up()
    ui.wait("window.ctlensViewer.state().window.preset === 'custom'", 60)
    dragged = ui.state()["window"]
    assert (round(dragged["center"]), round(dragged["width"])) != (-600, 1500)
    assert page.inner_text("#wl-readout") == f"C {round(dragged['center'])} / W {round(dragged['width'])} HU"
    after = tile(ui.stage(), first, "axial").astype(float)
    assert np.abs(after - before).mean() > 5, "the image did not change with the window"
    page.select_option("#window-select", "soft_tissue")
    ui.wait("window.ctlensViewer.state().window.preset === 'soft_tissue'", 60)
    assert page.inner_text("#wl-readout") == "C 40 / W 400 HU"

    # the HU and position under the cursor
    page.mouse.move(cx + 5, cy + 5)
    ui.wait("document.getElementById('probe').textContent.includes('HU')", 10)
    assert "mm LPS" in page.inner_text("#probe")

    # candidates list 1-based slices matching the slider; a click moves every plane to the candidate
    study = server.client().get(f"/api/studies/{first['study']}").json()
    cands = study["findings"]["candidates"]
    assert len(cands) >= 1
    target = cands[-1]
    item = page.locator("#candidates li").nth(len(cands) - 1)
    page.eval_on_selector("#slice-slider", "s => { s.value = 0; s.dispatchEvent(new Event('input')); }")
    ui.wait("window.ctlensViewer.state().slice === 0", 30)  # away from the candidate first, so the click must move
    assert f"slice {round(target['centre_voxel'][0]) + 1}" in item.inner_text()
    item.click()
    ui.wait(f"window.ctlensViewer.state().slice === {round(target['centre_voxel'][0])}", 30)
    moved = ui.state()
    assert np.allclose(moved["crosshair"]["voxel"], target["centre_voxel"], atol=0.6), moved["crosshair"]
    assert page.inner_text("#slice-label").startswith(f"slice {round(target['centre_voxel'][0]) + 1} / ")
    assert page.eval_on_selector("#slice-slider", "s => Number(s.value)") == round(target["centre_voxel"][0])
    shot = ui.stage()
    for mark in moved["crosshairOnScreen"]:  # the blue crosshair lines cross at the candidate in each plane
        px, py = (int(round(v)) for v in mark["xy"])
        column = shot[max(py - 60, 0) : py + 60, px - 1 : px + 2].astype(int)
        bluish = (column[..., 2] - column[..., 0] > 60).any(axis=1).mean()
        assert bluish > 0.5, f"no crosshair line through the candidate in the {mark['view']} view"
    assert {m["view"] for m in moved["crosshairOnScreen"]} == {"axial", "coronal", "sagittal"}

    # a distance measurement stays on its slice
    page.click("#tools button[data-tool=measure]")
    page.mouse.move(cx - 40, cy)
    page.mouse.down()
    page.mouse.move(cx + 40, cy, steps=4)
    page.mouse.up()
    ui.wait("window.ctlensViewer.state().measurements.length === 1", 10)
    assert ui.state()["measurements"][0]["distance"] > 10
    assert " mm" in page.inner_text("#measure")
    page.click("#tools button[data-tool=window]")

    # the series picker: both series listed, the analysed one selected; picking B70f loads that study
    assert page.is_visible("#series-card")
    options = page.eval_on_selector_all("#series-select option", "os => os.map(o => [o.value, o.textContent])")
    assert len(options) == 2 and "B40f" in options[0][1] and "B70f" in options[1][1]
    assert page.eval_on_selector("#series-select", "s => s.value") == options[0][0]
    page.select_option("#series-select", options[1][0])
    second = ui.loaded(2)
    assert second["study"] != first["study"]
    other = server.client().get(f"/api/studies/{second['study']}").json()
    assert other["facts"]["kernel"] == "B70f"
    assert (first["series"]["kernel"], second["series"]["kernel"]) == ("B40f", "B70f")
    assert page.eval_on_selector("#series-select", "s => s.value") == options[1][0]
    assert shows_image(tile(ui.stage(), second, "axial"))
    assert not ui.errors, ui.errors
    ui.close()


def write_orientation_phantom(path: Path) -> None:
    """A body (40 HU in air) with a bright marker on the patient's LEFT and a smaller one ANTERIOR, stored RAS.

    NIfTI voxel (i, j, k) -> RAS mm = (2 i - 63, 2 j - 63, 3 k): i grows to the patient's right, j to the front.
    """
    import nibabel as nib

    nx, ny, nz = 64, 64, 16
    i, j = np.mgrid[0:nx, 0:ny]
    x, y = 2.0 * i - 63, 2.0 * j - 63
    plane = np.full((nx, ny), -1000, np.int16)
    plane[x**2 + y**2 <= 50**2] = 40
    plane[(x + 38) ** 2 + y**2 <= 7**2] = 1500  # patient left: RAS x < 0
    plane[x**2 + (y - 38) ** 2 <= 4**2] = 1500  # anterior: RAS y > 0
    data = np.repeat(plane[:, :, None], nz, axis=2)
    affine = np.array([[2.0, 0, 0, -63], [0, 2.0, 0, -63], [0, 0, 3.0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), path)


def markers(pixels: np.ndarray, count: int) -> list[tuple[float, float]]:
    """Centroids of the `count` largest white blobs, largest first, as (dx, dy) from the body's centre."""
    from scipy import ndimage

    grey = pixels.astype(float).mean(axis=2)
    cy, cx = ndimage.center_of_mass(grey > 40)
    white = (pixels > 235).all(axis=2)
    labels, n = ndimage.label(white)
    assert n >= count, f"{count} marker(s) expected, {n} visible"
    sizes = ndimage.sum(white, labels, range(1, n + 1))
    found = []
    for index in np.argsort(sizes)[::-1][:count]:
        my, mx = ndimage.center_of_mass(white, labels, index + 1)
        found.append((mx - cx, my - cy))
    return found


def test_phantom_shows_patient_left_on_image_right_and_anterior_up(server, browser, tmp_path):
    path = tmp_path / "phantom_ras.nii.gz"
    write_orientation_phantom(path)
    ui = Page(browser, server)
    page = ui.page
    page.set_input_files("#file-input", [str(path)])
    state = ui.loaded(1)
    for box in ("#toggle-heatmap", "#toggle-roi", "#toggle-candidates"):
        if page.is_checked(box) and not page.is_disabled(box):
            page.uncheck(box)
    page.select_option("#window-select", "soft_tissue")
    ui.wait("window.ctlensViewer.state().window.preset === 'soft_tissue'", 30)
    page.evaluate("window.ctlensViewer.nv.setCrosshairWidth(0)")  # its lines would cut the markers
    shot = ui.stage()

    from PIL import Image

    Image.fromarray(shot).save(tmp_path / "phantom-stage.png")
    left, front = axial = markers(tile(shot, state, "axial"), 2)  # the left marker is the larger one
    assert left[0] > 10 and abs(left[1]) < 8, f"patient left is not on image right in the axial view: {axial}"
    assert front[1] < -10 and abs(front[0]) < 8, f"anterior is not at the top of the axial view: {axial}"
    (coronal,) = markers(tile(shot, state, "coronal"), 1)  # the coronal plane through the centre: left marker
    assert coronal[0] > 10, f"patient left is not on image right in the coronal view: {coronal}"
    (sagittal,) = markers(tile(shot, state, "sagittal"), 1)  # the sagittal plane through the centre: front marker
    assert sagittal[0] < -10, f"anterior is not on the left of the sagittal view: {sagittal}"

    assert not ui.errors, ui.errors
    ui.close()


def test_slice_pngs_follow_the_same_convention_as_the_viewer(server, tmp_path):
    """The PNG slices (the display rule for people and LLMs) must put the phantom's markers where NiiVue does."""
    from PIL import Image

    path = tmp_path / "phantom_ras.nii.gz"
    write_orientation_phantom(path)
    with server.client() as client:
        study = client.post("/api/analyze", files=[("files", (path.name, path.read_bytes()))]).json()
        png = client.get(f"/api/studies/{study['id']}/slices/8.png?window=soft_tissue").content
    (left, front) = markers(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), 2)
    assert left[0] > 10 and abs(left[1]) < 8, f"patient left is not on image right: {left}"
    assert front[1] < -10 and abs(front[0]) < 8, f"anterior is not at the top: {front}"


@pytest.mark.shared_data
def test_ge_head_ct_opens_in_the_brain_window_with_the_tilt_warning(server, browser):
    folder = data_dir() / "dcm_qa_ct_ge" / "dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    ui = Page(browser, server)
    page = ui.page
    page.set_input_files("#file-input", sorted(str(p) for p in folder.iterdir() if p.is_file()))
    state = ui.loaded(1)
    assert state["window"]["preset"] == "brain"
    assert (state["window"]["center"], state["window"]["width"]) == (40, 80)
    assert page.eval_on_selector("#window-select", "s => s.value") == "brain"
    assert page.inner_text("#wl-readout") == "C 40 / W 80 HU"
    assert page.is_visible("#reader-warnings")
    assert "tilt" in page.inner_text("#reader-warnings")
    assert shows_image(tile(ui.stage(), state, "axial"))
    assert not ui.errors, ui.errors
    ui.close()


def test_docs_render_with_the_network_blocked(server, browser):
    page = browser.new_page()
    blocked: list[str] = []

    def only_loopback(route):
        url = route.request.url
        if url.startswith(server.base_url) or url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(server.base_url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert "/api/analyze" in page.inner_text(".swagger-ui")
    assert not blocked, f"/docs asked for outside resources: {blocked}"
    page.close()
