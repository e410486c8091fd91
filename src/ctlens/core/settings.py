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

    # --- archives (DICOMweb, DICOM networking) and results as DICOM --------------------------------------------
    dicomweb_url: str | None = None
    """A DICOMweb root (``http://host:8042/dicom-web``): ``ctlens pull`` / ``push`` and the service's archive page."""
    dicomweb_token: SecretStr | None = None
    """Bearer token sent to the DICOMweb server (``Authorization: Bearer ...``)."""
    dicomweb_username: str | None = None
    """HTTP basic-auth user for the DICOMweb server (with ``dicomweb_password``)."""
    dicomweb_password: SecretStr | None = None
    dicomweb_timeout: float = 30.0
    """Seconds allowed for connecting and between bytes; a whole retrieval may take ``dicomweb_deadline``."""
    dicomweb_deadline: float = 600.0
    """Most seconds one DICOMweb request may take in all (a server that drips bytes is cut off)."""
    dicomweb_retries: int = 2
    """Retries of a DICOMweb request after a connection failure or a 502/503/504 answer."""
    dicomweb_max_bytes: int = 4 * 1024**3
    """Most bytes one series retrieval may bring (a larger Content-Length or stream is refused)."""
    dicom_uid_root: str | None = None
    """UID root for the SEG / SR / Secondary Capture objects ctlens creates; ``2.25.`` (UUID-derived) when unset."""
    listen_ae_title: str = "CTLENS"
    """AE title of ``ctlens listen`` (the C-STORE SCP)."""
    listen_port: int = 11112
    listen_allowed_ae_titles: list[str] = []
    """Calling AE titles ``ctlens listen`` accepts; empty means none unless ``listen_accept_any``."""
    listen_accept_any: bool = False
    """Accept associations from any calling AE title (only on trusted networks)."""
    listen_quiet_seconds: float = 10.0
    """A received study is analysed once no instance of it has arrived for this long."""
    listen_max_spool_bytes: int = 20 * 1024**3
    """Most bytes the listener's spool folder may hold; further instances are refused (status 0xA700)."""
    listen_destination: str | None = None
    """Where ``ctlens listen`` sends results: a DICOMweb URL or ``dicom://AET@host:port``; none when unset."""


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    return Settings()
