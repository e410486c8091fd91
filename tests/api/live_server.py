"""A real uvicorn server on 127.0.0.1 in a background thread, for the API, browser and benchmark runs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from ctlens.api.app import create_app
from ctlens.core.settings import Settings
from ports import free_port


def service_settings(folder: Path, **overrides) -> Settings:
    """Settings for a test service: its own folder, no LLM keys (offline unless a test sets a fake server)."""
    values = dict(
        service_dir=folder,
        llm_provider="auto",
        anthropic_api_key=None,
        openai_api_key=None,
        openai_base_url=None,
        gemini_api_key=None,
        rate_limit_per_minute=6000,
        rate_limit_burst=1000,
        redis_url=None,
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class LiveServer:
    base_url: str
    key: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def ctx(self):
        return self.app.state.ctx

    def client(self, key: str | None = "__default__", **kwargs) -> httpx.Client:
        headers = {}
        key = self.key if key == "__default__" else key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=120.0, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_server(settings: Settings, port: int | None = None) -> LiveServer:
    """Start the app under uvicorn on 127.0.0.1 and wait until /healthz answers."""
    app = create_app(settings)
    key = app.state.ctx.create_key("test")
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                return LiveServer(base, key, app, server, thread)
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the test server did not start")
