"""The web viewer in Chromium: time to first image after the analysis, and slice-scrolling frames/s.

A synthetic 512 x 512 x 300 int16 CT body phantom (a fresh seed each run unless ``--seed``) is uploaded through the
page to a real service (``uvicorn`` in a subprocess on 127.0.0.1) and viewed in headless Chromium (Playwright).

Measured in the page (``performance.now()``):
  * first image: from the moment the study JSON says ``ready`` to the first animation frame after NiiVue drew the
    volume (download of ``volume.nii.gz``, gunzip, parse, GPU upload, first draw); the screenshot's axial tile is
    checked to be non-blank;
  * scrolling: ``requestAnimationFrame`` callbacks while the axial slice steps by one per frame (each step is a
    full redraw), in the axial-only layout and in the default multiplanar + 3-D layout.

Peer (same run, same page, same study): the previous page's path, one server-rendered PNG per slice
(``GET /api/studies/{id}/slices/{k}.png?window=lung``) decoded with ``createImageBitmap`` and drawn on a 2-D canvas,
with its +-1/+-2 prefetch. Ratios are printed as peer / viewer for the first image and viewer / peer for frames/s.

Goals (issue 18): first image <= 2 s, scrolling >= 30 frames/s.

Usage:
    python benchmarks/bench_viewer.py [--shape 300 512 512] [--seed N] [--steps 60]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "src" / "ctlens" / "api" / "static" / "vendor" / "niivue.js"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def phantom(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """An int16 CT-like body: soft tissue, two lungs, a spine, a few nodules, noise (HU).

    Example:
        >>> v = phantom((4, 32, 32), 0)
        >>> v.dtype.name, v.shape, int(v.min()) <= -900, int(v.max()) >= 300
        ('int16', (4, 32, 32), True, True)
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    cy, cx = ny / 2, nx / 2
    out = np.full(shape, -1000, np.float32)
    body = ((y - cy) / (0.36 * ny)) ** 2 + ((x - cx) / (0.45 * nx)) ** 2 <= 1
    spine = (y - (cy + 0.25 * ny)) ** 2 + (x - cx) ** 2 <= (0.05 * nx) ** 2
    for z in range(nz):
        size = 0.6 + 0.4 * np.sin(np.pi * (z + 0.5) / nz)  # lungs widest mid-volume
        lungs = np.zeros((ny, nx), bool)
        for side in (-1, 1):
            lungs |= ((y - cy) / (0.25 * ny * size)) ** 2 + ((x - cx - side * 0.2 * nx) / (0.15 * nx * size)) ** 2 <= 1
        plane = out[z]
        plane[body] = 40
        plane[lungs] = -850
        plane[spine] = 700
    for _ in range(6):
        zc = rng.integers(nz // 5, 4 * nz // 5)
        yc, xc = rng.integers(ny // 3, 2 * ny // 3), rng.integers(nx // 4, nx // 2)
        r = rng.uniform(3, 10)
        zz, yy, xx = np.ogrid[0:nz, 0:ny, 0:nx]
        out[((zz - zc) * 2) ** 2 + (yy - yc) ** 2 + (xx - xc) ** 2 <= r * r] = 30
    out += rng.normal(0, 15, shape).astype(np.float32)
    return np.clip(out, -1024, 3071).astype(np.int16)


def write_phantom(folder: Path, shape: tuple[int, int, int], seed: int) -> Path:
    import nibabel as nib

    vol = phantom(shape, seed)
    affine = np.diag([-0.7, -0.7, 1.0, 1.0])  # LPS storage, 0.7 mm pixels, 1 mm slices
    path = folder / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), affine), path)
    return path


def start_server(folder: Path) -> tuple[subprocess.Popen, str, str]:
    """``uvicorn`` serving ctlens in a subprocess; returns the process, base URL and an API key."""
    from ctlens.api.context import ServiceContext
    from ctlens.core.settings import Settings

    key = ServiceContext(Settings(service_dir=folder)).create_key("bench")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CTLENS_SERVICE_DIR": str(folder), "CTLENS_LLM_PROVIDER": "offline"}
    env.pop("CTLENS_REDIS_URL", None)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "ctlens.api.app:app_from_env"]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base, key
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the ctlens server did not start")


def wait(page, expression: str, timeout: float) -> None:
    """Poll ``expression`` in the page (``evaluate``, which the page's CSP allows) until it is truthy."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.evaluate(expression):
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {expression}")


SCROLL_JS = """async ([layout, steps]) => {
  const v = window.ctlensViewer;
  v.setLayout(layout);
  v.goToSlice(Math.floor(v.nSlices() / 2) - Math.floor(steps / 2));
  await new Promise((ok) => setTimeout(ok, 2000)); // the 3-D view redraws once after a layout change: let it
  await new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));
  let frames = 0;
  const renders = v.render.renders;
  const t0 = performance.now();
  await new Promise((ok) => {
    const tick = () => { v.step(1); frames += 1; if (frames < steps) requestAnimationFrame(tick); else ok(); };
    requestAnimationFrame(tick);
  });
  await new Promise((ok) => requestAnimationFrame(ok));
  const s = (performance.now() - t0) / 1000;
  v.setLayout("multiplanar");
  return { fps: frames / s, frames, seconds: s, renders3d: v.render.renders - renders };
}"""

PEER_JS = """async ([id, n, steps]) => {
  // The previous page's path: a PNG per slice from the server, decoded and drawn on a 2-D canvas, +-2 prefetch.
  const key = sessionStorage.getItem("ctlens-key");
  const cache = new Map();
  const get = (k) => {
    const url = `/api/studies/${id}/slices/${k}.png?window=lung&overlay=none`;
    if (!cache.has(url)) cache.set(url, fetch(url, { headers: { Authorization: "Bearer " + key } })
      .then((r) => r.blob()).then((b) => createImageBitmap(b)));
    return cache.get(url);
  };
  const canvas = document.createElement("canvas");
  canvas.width = 512; canvas.height = 512;
  document.body.appendChild(canvas);
  const g = canvas.getContext("2d");
  const show = async (k) => {
    const bmp = await get(k);
    g.drawImage(bmp, 0, 0, canvas.width, canvas.height);
    for (const d of [1, -1, 2, -2]) if (k + d >= 0 && k + d < n) get(k + d).catch(() => {});
  };
  const frame = () => new Promise((ok) => requestAnimationFrame(ok));
  let t0 = performance.now();
  await show(Math.floor(n / 4));
  await frame();
  const first_ms = performance.now() - t0;
  const start = Math.max(0, Math.floor(n / 2) - Math.floor(steps / 2));
  t0 = performance.now();
  for (let i = 0; i < steps; i++) { await show(start + i); await frame(); }
  const s = (performance.now() - t0) / 1000;
  canvas.remove();
  return { first_ms, fps: steps / s, frames: steps, seconds: s };
}"""


def tile_is_blank(png: bytes, rect: list[float]) -> tuple[bool, float]:
    """Whether the screenshot's tile ``rect`` (CSS px: left, top, width, height in the canvas) shows nothing."""
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    x, y, w, h = (int(round(v)) for v in rect)
    tile = img[y : y + h, x : x + w]
    return bool(tile.std() < 5), float(tile.std())


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory(prefix="ctlens-bench-viewer-") as tmp:
        t = time.perf_counter()
        nifti = write_phantom(Path(tmp), shape, seed)
        print(
            f"phantom {shape[2]}x{shape[1]}x{shape[0]} int16, seed {seed}: {nifti.stat().st_size / 1e6:.1f} MB "
            f"gz in {time.perf_counter() - t:.1f} s"
        )
        proc, base, key = start_server(Path(tmp) / "service")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1500, "height": 950})
                page.set_default_timeout(900_000)  # software WebGL keeps the page busy for long stretches
                page.goto(base + "/")
                page.fill("#key", key)
                page.click("#login-btn")
                wait(page, "document.getElementById('viewer').dataset.viewer === 'ready'", 60)
                t = time.perf_counter()
                page.set_input_files("#file-input", [str(nifti)])
                wait(page, "Number(document.getElementById('viewer').dataset.loaded) >= 1", 900)
                print(f"upload + analysis + first image: {time.perf_counter() - t:.1f} s (wall, for information)")
                state = page.evaluate("window.ctlensViewer.state()")
                t = time.perf_counter()
                wait(page, "document.getElementById('viewer').dataset.overlays !== undefined", 900)
                wait(page, "window.ctlensViewer.state().render3d.renders >= 1", 900)
                print(f"overlays and 3-D view ready {time.perf_counter() - t:.1f} s later (wall, for information)")
                axial = next(tile for tile in state["tiles"] if tile["view"] == "axial")
                box = page.locator("#viewer").bounding_box()
                shot = page.screenshot(
                    clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}
                )
                blank, spread = tile_is_blank(shot, axial["rect"])
                timing = state["timing"]
                steps = min(args.steps, shape[0] - 1)  # one slice per frame, never past the last
                axial_fps = page.evaluate(SCROLL_JS, ["axial", steps])
                mpr_fps = page.evaluate(SCROLL_JS, ["multiplanar", steps])
                peer = page.evaluate(PEER_JS, [state["study"], shape[0], steps])
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    return {
        "renderer": state["renderer"],
        "seed": seed,
        "timing": timing,
        "blank": blank,
        "spread": spread,
        "axial": axial_fps,
        "multiplanar": mpr_fps,
        "peer": peer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[300, 512, 512], metavar=("Z", "Y", "X"))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--steps", type=int, default=60, help="slices stepped per scrolling measurement")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if not VENDOR.exists():
        sys.exit(f"bench_viewer: {VENDOR} is missing: run `make viewer` (needs npm)")
    r = run(args)
    t, peer = r["timing"], r["peer"]
    print(f"WebGL renderer: {r['renderer']}")
    first = t["ready_to_image_ms"]
    print(
        f"first image after ready: {first:.0f} ms (download {t['download_ms']:.0f} ms, parse {t['parse_ms']:.0f} ms)"
        f"; axial tile {'BLANK' if r['blank'] else 'non-blank'} (pixel std {r['spread']:.1f})"
    )
    ratio = peer["first_ms"] / first
    print(f"peer (PNG per slice) first image: {peer['first_ms']:.0f} ms; peer / viewer = {ratio:.2f}x")
    for name in ("axial", "multiplanar"):
        fps = r[name]["fps"]
        print(
            f"scrolling, {name} layout: {fps:.1f} frames/s over {r[name]['frames']} slices "
            f"({r[name]['renders3d']} 3-D redraws meanwhile); viewer / peer = {fps / peer['fps']:.2f}x"
        )
    print(f"peer scrolling (PNG per slice): {peer['fps']:.1f} frames/s")
    print(
        f"goals: first image <= 2000 ms: {'met' if first <= 2000 else 'MISSED'}; "
        f"scrolling >= 30 frames/s (axial): {'met' if r['axial']['fps'] >= 30 else 'MISSED'}, "
        f"(multiplanar + 3-D): {'met' if r['multiplanar']['fps'] >= 30 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
