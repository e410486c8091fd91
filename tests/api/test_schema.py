"""Schemathesis: requests generated from the OpenAPI schema never get a 5xx (bounded example counts)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from ctlens.api.app import create_app  # noqa: E402
from ctlens.core.settings import Settings  # noqa: E402

_FOLDER = Path(tempfile.mkdtemp(prefix="ctlens-schema-"))
atexit.register(shutil.rmtree, _FOLDER, True)
APP = create_app(
    Settings(
        service_dir=_FOLDER,
        llm_provider="offline",
        rate_limit_per_minute=100_000,
        rate_limit_burst=100_000,
        max_upload_bytes=2_000_000,
        redis_url=None,
    ),
    start_jobs=False,
)
KEY = APP.state.ctx.create_key("schemathesis")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case):
    response = case.call(headers={"Authorization": f"Bearer {KEY}"})
    case.validate_response(response, checks=(not_a_server_error,))
    uploads = APP.state.ctx.tmp_dir
    assert not any(uploads.iterdir()), "a request left staged files behind"
