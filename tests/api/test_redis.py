"""Optional Redis (result mirror + shared rate limits), tested only where a ``redis-server`` binary exists."""

from __future__ import annotations

import io
import shutil
import subprocess
import time

import httpx
import pytest
from live_server import free_port, service_settings
from PIL import Image

from ctlens.api.app import create_app


@pytest.fixture
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed; Redis support is optional (CTLENS_REDIS_URL)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    redis = pytest.importorskip("redis")
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.mark.anyio
async def test_redis_mirrors_results_and_counts_rates(tmp_path, redis_url):
    import redis

    settings = service_settings(tmp_path / "svc", redis_url=redis_url, rate_limit_per_minute=0, rate_limit_burst=5)
    app = create_app(settings, start_jobs=False)
    key = app.state.ctx.create_key("r")
    buf = io.BytesIO()
    Image.new("L", (32, 32), 100).save(buf, "PNG")
    png = buf.getvalue()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"Authorization": f"Bearer {key}"}
    ) as c:
        r = await c.post("/api/analyze", files={"files": ("a.png", png)})
        assert r.status_code == 200, r.text
        assert redis.Redis.from_url(redis_url).get(f"ctlens:content:{r.json()['sha256']}") is not None
        codes = [(await c.get("/api/me")).status_code for _ in range(6)]
        assert 429 in codes


@pytest.fixture
def anyio_backend():
    return "asyncio"
