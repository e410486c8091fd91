"""ScanSage (seed 004): its documented clients run unchanged against a real ``ctlens serve --no-auth`` subprocess
on 127.0.0.1, started in a ScanSage-like working directory (a ``.env`` with ``GENAI_API_KEY``, ``models/`` with
``brain_model.h5`` (Keras), ``lung_tumor.onnx`` and a broken ``breast_tumor.h5``); the chat reaches a loopback fake
Gemini server with the key from the ``.env``. Only the seed's port is changed (the test server's free port).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from seed_data import dicom_series_dirs, seed_python_blocks
from tiny_models import keras_mean_model, onnx_mean_max_model

from api.fake_llm import ANSWER, start_fake
from ports import free_port

pytest.importorskip("onnxruntime")
if importlib.util.find_spec("keras") is None:  # not importorskip: importing keras here would pick its default backend
    pytest.skip("keras is not installed", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # keras on torch

DOTENV_KEY = "genai-key-from-dotenv-004"
NOTE = "model output, not a diagnosis"
CTLENS = str(Path(sys.executable).with_name("ctlens"))
_SECRET_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GENAI_API_KEY")


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ctlens settings or provider keys (a user's shell), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTLENS_", "KERAS_")) and k not in _SECRET_VARS}
    return {**env, **extra}


def _seed_blocks(port: int) -> list[str]:
    return [b.replace("http://localhost:8000", f"http://localhost:{port}") for b in seed_python_blocks("004")]


def _jpeg_from_series(folder: Path, out: Path) -> np.ndarray:
    """The middle slice of a DICOM series as a grey JPEG through a soft-tissue window; returns its decoded pixels."""
    from PIL import Image

    from ctlens.io import load
    from ctlens.preprocess.windows import to_display_uint8, window_limits

    volume = load(folder)
    Image.fromarray(to_display_uint8(volume.array[volume.shape[0] // 2], *window_limits("soft_tissue"))).save(out)
    return np.asarray(Image.open(out).convert("L"))


@dataclass
class ScanSage:
    work: Path
    port: int
    process: subprocess.Popen
    gemini: object

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def series_dirs() -> list[Path]:
    dirs = dicom_series_dirs()
    if not dirs:
        pytest.skip("no DICOM series in the shared data")
    return dirs


@pytest.fixture(scope="module")
def scansage(tmp_path_factory) -> ScanSage:
    work = tmp_path_factory.mktemp("scansage")
    (work / ".env").write_text(f"# ScanSage's .env\nGENAI_API_KEY={DOTENV_KEY}\nDEBUG=true\n")
    keras_mean_model(work / "models" / "brain_model.h5")
    (work / "models" / "brain_model.json").write_text(json.dumps({"labels": ["mean", "one_minus_mean"]}))
    onnx_mean_max_model(work / "models" / "lung_tumor.onnx", ["batch", 1, 32, 32])
    onnx_mean_max_model(work / "models" / "chest_volume.onnx", [1, 1, 8, 32, 32])
    (work / "models" / "breast_tumor.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"not really a model" * 20)
    gemini = start_fake("gemini")
    port = free_port()
    env = _clean_env(CTLENS_SERVICE_DIR=str(work / "service"), CTLENS_GEMINI_BASE_URL=gemini.base_url)
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(
        [CTLENS, "serve", "--no-auth", "--port", str(port)], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"ctlens serve --no-auth did not start: {(work / 'serve.log').read_text()[-2000:]}")
        yield ScanSage(work, port, process, gemini)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
        gemini.stop()


def _run(block: str, ns: dict) -> str:
    """Run a seed block as written; what it prints (the JSON answer) is returned, not shown."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(block, ns)
    return out.getvalue()


def _entries(body: dict) -> dict[str, dict]:
    return {e["file"]: e for e in body.get("user_models") or []}


@pytest.mark.shared_data
def test_seed_clients_run_unchanged_on_every_shared_series(scansage, series_dirs, monkeypatch) -> None:
    analyze_block, chat_block = _seed_blocks(scansage.port)
    monkeypatch.chdir(scansage.work)
    for folder in series_dirs:
        grey = _jpeg_from_series(folder, scansage.work / "scan.jpg")
        ns: dict = {}
        printed = _run(analyze_block, ns)  # Analyze a Medical Scan, as documented
        response = ns["response"]
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ready" and body["kind"] == "jpeg" and body["shape"][0] == 1
        assert printed.startswith("{'id': ") and "user_models" in printed
        models = _entries(body)
        assert sorted(models) == ["brain_model.h5", "breast_tumor.h5", "chest_volume.onnx", "lung_tumor.onnx"]
        assert all(m["note"] == NOTE for m in models.values())
        mean = grey.astype(float).mean() / 255  # what a model fed the image in [0, 1] sees on average
        brain = models["brain_model.h5"]
        assert "warning" not in brain and brain["format"] == "keras", brain
        assert brain["input"]["shape"] == [1, 64, 48, 3] and brain["input"]["source"] == "the 2-D image"
        assert brain["labels"]["mean"] == pytest.approx(mean, abs=0.02), folder
        assert brain["labels"]["one_minus_mean"] == pytest.approx(1 - mean, abs=0.02)
        lung = models["lung_tumor.onnx"]
        values = {o["name"]: o["values"][0] for o in lung["outputs"]}
        assert values["mean"] == pytest.approx(mean, abs=0.02) and mean < values["max"] <= grey.max() / 255 + 1e-6
        assert brain["outputs"][0]["name"] == "scores"  # the Keras layer's name
        assert "outputs" not in models["breast_tumor.h5"]
        assert models["breast_tumor.h5"]["warning"].startswith("could not load breast_tumor.h5")
        assert str(scansage.work) not in json.dumps(body)

        _run(chat_block, ns)  # Chat with Context and Image, as documented
        response = ns["response"]
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["answer"] == "".join(ANSWER) and answer["provider"] == "gemini" and answer["images"] == 1
        sent = scansage.gemini.requests[-1]
        assert {k.lower(): v for k, v in sent.headers.items()}.get("x-goog-api-key") == DOTENV_KEY
        assert "Is there a tumor visible?" in sent.body.decode()

        _run(analyze_block.replace("/api/analyze", "/process-image"), ns)  # the third documented endpoint
        response = ns["response"]
        assert response.status_code == 200, response.text
        processed = response.json()
        assert processed["shape"] == list(grey.shape) and processed["overlay_png"], processed.get("analysis")


@pytest.mark.shared_data
def test_a_ct_series_upload_runs_the_models_on_its_key_slice_and_volume(scansage, series_dirs, monkeypatch) -> None:
    from ctlens.io import load
    from ctlens.preprocess.windows import apply_window

    folder = min(series_dirs, key=lambda d: sum(1 for _ in d.iterdir()))
    monkeypatch.chdir(scansage.work)
    with zipfile.ZipFile(scansage.work / "scan.zip", "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    analyze_block, _ = _seed_blocks(scansage.port)
    ns: dict = {}
    _run(analyze_block.replace("scan.jpg", "scan.zip"), ns)
    response = ns["response"]
    assert response.status_code == 200, response.text
    body = response.json()
    models = _entries(body)
    depth = body["shape"][0]
    window = body["viewer"]["default_preset"]
    for name in ("brain_model.h5", "lung_tumor.onnx"):
        used = models[name]["input"]
        assert 1 <= used["slice_1based"] <= depth and used["source"] == f"key slice {used['slice_1based']} of {depth}"
        assert used["window"] == window and models[name]["outputs"], models[name]
    chest = models["chest_volume.onnx"]
    assert chest["input"]["source"] == f"whole volume ({depth} slices)" and chest["input"]["layout"] == "NCDHW"
    expected = float(apply_window(load(folder).array, window).mean())
    assert chest["outputs"][0]["values"][0] == pytest.approx(expected, abs=0.03)
    again = httpx.get(f"{scansage.base}/api/studies/{body['id']}", timeout=60).json()  # keyless, stored
    assert _entries(again) == models


def test_a_wrong_key_is_still_refused_and_studies_belong_to_the_local_owner(scansage) -> None:
    me = httpx.get(f"{scansage.base}/api/me", timeout=30)
    assert me.status_code == 200 and me.json()["name"] == "local (no auth)"
    wrong = httpx.get(f"{scansage.base}/api/me", headers={"Authorization": "Bearer ctl_wrong"}, timeout=30)
    assert wrong.status_code == 401


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_no_auth_on_a_public_host_is_refused_in_one_line(tmp_path, host) -> None:
    env = _clean_env(CTLENS_SERVICE_DIR=str(tmp_path / "service"))
    run = subprocess.run(
        [CTLENS, "serve", "--no-auth", "--host", host, "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        f"ctlens: error: --no-auth is for local use only: bind to 127.0.0.1 (or ::1), not {host!r}; "
        "other hosts need API keys"
    ]
    assert not (tmp_path / "service").exists()  # refused before anything was created


def test_no_auth_from_a_dotenv_is_refused_on_a_public_host_too(tmp_path) -> None:
    (tmp_path / ".env").write_text("CTLENS_NO_AUTH=true\n")
    run = subprocess.run(
        [CTLENS, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=tmp_path,
        env=_clean_env(CTLENS_SERVICE_DIR=str(tmp_path / "service")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "--no-auth is for local use only" in run.stderr


def test_no_auth_serves_only_loopback_clients(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from ctlens.api.app import create_app
    from ctlens.core.settings import Settings

    app = create_app(Settings(service_dir=tmp_path, no_auth=True), start_jobs=False)
    local = TestClient(app, client=("127.0.0.1", 50000))
    assert local.get("/api/me").json() == {"key_id": "local", "name": "local (no auth)"}
    remote = TestClient(app, client=("10.1.2.3", 50000))
    refused = remote.post("/api/analyze", content=b"x" * 1000, headers={"content-type": "text/plain"})
    assert refused.status_code == 401 and "this machine only" in refused.json()["detail"]
    key = app.state.ctx.create_key("remote user")
    assert remote.get("/api/me", headers={"Authorization": f"Bearer {key}"}).json()["name"] == "remote user"
    keyed = create_app(Settings(service_dir=tmp_path / "keyed"), start_jobs=False)
    assert TestClient(keyed, client=("127.0.0.1", 50000)).get("/api/me").status_code == 401


def test_dotenv_is_read_with_genai_api_key_as_the_gemini_key_and_a_clear_precedence(tmp_path, monkeypatch) -> None:
    from ctlens.core.settings import Settings
    from ctlens.llm.providers import get_provider

    for name in ("CTLENS_ENV_FILE", "CTLENS_GEMINI_API_KEY", "CTLENS_LLM_PROVIDER", *_SECRET_VARS):
        monkeypatch.delenv(name, raising=False)
    for name in ("CTLENS_ANTHROPIC_API_KEY", "CTLENS_OPENAI_API_KEY", "CTLENS_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GENAI_API_KEY=from-dotenv\nDEBUG=true\nCTLENS_NOT_A_SETTING=1\n")
    settings = Settings()
    assert settings.gemini_api_key.get_secret_value() == "from-dotenv"  # ScanSage's name, from ScanSage's file
    assert get_provider(settings).name == "gemini"
    (tmp_path / ".env").write_text("GENAI_API_KEY=from-dotenv\nCTLENS_GEMINI_API_KEY=ctlens-in-dotenv\n")
    assert Settings().gemini_api_key.get_secret_value() == "ctlens-in-dotenv"  # our name wins within a source
    monkeypatch.setenv("GENAI_API_KEY", "from-environment")
    assert Settings().gemini_api_key.get_secret_value() == "from-environment"  # the environment beats the file
    monkeypatch.setenv("CTLENS_GEMINI_API_KEY", "ctlens-in-environment")
    assert Settings().gemini_api_key.get_secret_value() == "ctlens-in-environment"
    assert Settings(gemini_api_key=None).gemini_api_key is None  # keyword arguments beat everything
    monkeypatch.delenv("GENAI_API_KEY")
    monkeypatch.delenv("CTLENS_GEMINI_API_KEY")
    monkeypatch.setenv("CTLENS_ENV_FILE", "")  # what a test suite sets: no dotenv at all
    assert Settings().gemini_api_key is None
    other = tmp_path / "elsewhere.env"
    other.write_text("CTLENS_LLM_PROVIDER=offline\n")
    monkeypatch.setenv("CTLENS_ENV_FILE", str(other))
    assert Settings().llm_provider == "offline" and Settings().gemini_api_key is None
    with pytest.raises(TypeError, match="unknown setting.*servce_dir"):
        Settings(servce_dir=tmp_path)


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.shared_data
def test_the_page_logs_in_without_a_key_and_shows_the_user_models(scansage, series_dirs, tmp_path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    scan = tmp_path / "page-scan.jpg"
    _jpeg_from_series(series_dirs[-1], scan)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(scansage.base + "/")
            page.wait_for_selector("#app:not(.hidden)", timeout=30_000)  # no key asked for
            assert "local (no auth)" in page.inner_text("#who")
            page.set_input_files("#file-input", str(scan))
            page.wait_for_selector("#user-models", timeout=120_000)
            block = page.inner_text("#user-models")
            for name in ("brain_model.h5", "lung_tumor.onnx", "chest_volume.onnx", "breast_tumor.h5"):
                assert name in block
            assert block.count("model output, not a diagnosis") == 4
            assert "could not load breast_tumor.h5" in block and "one_minus_mean" in block
            assert not errors, errors
        finally:
            browser.close()


def test_python_m_ctlens_api_refuses_no_auth_on_a_public_host(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, CTLENS_SERVICE_DIR=str(tmp_path / "svc"), CTLENS_NO_AUTH="1", CTLENS_ENV_FILE="")
    done = subprocess.run(
        [sys.executable, "-m", "ctlens.api", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0 and "--no-auth is for local use only" in done.stderr
    assert "Traceback" not in done.stderr
