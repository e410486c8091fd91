"""Settings read from the environment (prefix ``CTLENS_``), never at import time.

Example:
    >>> from ctlens.core.settings import get_settings
    >>> get_settings().max_archive_bytes > 0
    True
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime settings; each field can be set as ``CTLENS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CTLENS_")

    data_dir: Path = Path("../shared/data")
    """Folder with sample data (the repository's sibling ``shared/data`` by default)."""
    decode_workers: int = 0
    """Threads for decoding DICOM pixel data; 0 means one per CPU core."""
    max_archive_bytes: int = 8 * 1024**3
    """Largest total uncompressed size accepted from one zip archive."""
    max_archive_ratio: float = 200.0
    """Largest uncompressed/compressed size ratio accepted for a zip member (zip bombs)."""
    max_archive_members: int = 100_000
    """Most files accepted from one zip archive."""

    # --- service (ctlens serve) -------------------------------------------------------------------------------
    service_dir: Path = Path.home() / ".local" / "share" / "ctlens"
    """Where the service keeps its SQLite database, uploaded studies and results."""
    workers: int = 1
    """uvicorn worker processes for ``ctlens serve`` (job state lives in SQLite, so any worker may die)."""
    job_workers: int = 1
    """Threads per worker process that run analysis jobs."""
    job_threshold_bytes: int = 64 * 1024**2
    """Uploads larger than this run as a background job (``202`` + ``/api/jobs/{id}``)."""
    job_lease_seconds: float = 60.0
    """A running job whose worker has not sent a heartbeat for this long is given to another worker."""
    redis_url: str | None = None
    """Optional Redis (``redis://host:6379/0``): shared result cache and rate-limit counters across hosts."""
    max_upload_bytes: int = 2 * 1024**3
    """Largest request body accepted by ``POST /api/analyze`` (and other uploads)."""
    max_upload_files: int = 5000
    """Most files in one upload request."""
    max_image_pixels: int = 64_000_000
    """Pillow's decompression-bomb limit for uploaded 2-D images."""
    rate_limit_per_minute: float = 600.0
    """Requests per minute allowed for one API key (token bucket)."""
    rate_limit_burst: int = 200
    """Requests one API key may send at once before the per-minute rate applies."""
    auth_failures_per_minute: float = 60.0
    """Requests without a valid key allowed per minute from one client address (then 429)."""
    auth_failures_burst: int = 120
    """Requests without a valid key one client address may send at once."""
    key_pepper: SecretStr | None = None
    """Secret mixed into API-key hashes; generated once into ``service_dir`` when not set."""
    llm_provider: str = "auto"
    """``auto`` (the first provider with a key, else offline), ``anthropic``, ``openai``, ``gemini`` or ``offline``."""
    llm_token_budget: int = 8000
    """Input-token budget of one LLM request (images + text)."""
    llm_max_output_tokens: int = 1024
    """Most tokens one answer may use."""
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-6"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    """Any OpenAI-compatible server (vLLM, Ollama: ``http://localhost:11434/v1``)."""
    openai_model: str = "gpt-4o"
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = None
    gemini_model: str = "gemini-2.5-flash"
    clip_checkpoint: Path | None = None
    """A 3D CLIP checkpoint folder (``ctlens clip train``); when set, the service adds zero-shot finding
    probabilities to each 3-D CT study (model outputs, not diagnoses)."""


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    return Settings()
