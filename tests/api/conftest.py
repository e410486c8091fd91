"""Fixtures of the API tests: a real uvicorn server on 127.0.0.1 with its own service folder and key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from live_server import LiveServer, service_settings, start_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> LiveServer:
    srv = start_server(service_settings(tmp_path_factory.mktemp("service")))
    yield srv
    srv.stop()
