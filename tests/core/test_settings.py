"""ctlens.core.settings: every field is read from CTLENS_<FIELD> when asked, never at import time."""

from __future__ import annotations

import pydantic
import pytest

from ctlens.core.settings import Settings, get_settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CTLENS_SERVICE_DIR", str(tmp_path))
    monkeypatch.setenv("CTLENS_MAX_UPLOAD_FILES", "7")
    s = get_settings()
    assert s.service_dir == tmp_path and s.max_upload_files == 7


def test_settings_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTLENS_JOB_WORKERS", "3")
    assert get_settings().job_workers == 3
    monkeypatch.setenv("CTLENS_JOB_WORKERS", "5")
    assert get_settings().job_workers == 5


def test_secrets_are_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTLENS_ANTHROPIC_API_KEY", "sk-secret-value")
    s = get_settings()
    assert "sk-secret-value" not in repr(s)
    assert s.anthropic_api_key.get_secret_value() == "sk-secret-value"


def test_malformed_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTLENS_MAX_UPLOAD_FILES", "many")
    with pytest.raises(pydantic.ValidationError, match="max_upload_files"):
        Settings()
