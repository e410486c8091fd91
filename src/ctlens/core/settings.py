"""Settings read from the environment (prefix ``CTLENS_``) and a ``.env`` file, never at import time.

Where a value comes from, first match wins:

1. keyword arguments (``Settings(service_dir=...)``, what tests and the API's callers pass);
2. environment variables: ``CTLENS_<FIELD>``; for the Gemini key ``CTLENS_GEMINI_API_KEY``, then ``GENAI_API_KEY``
   (the name ScanSage's ``.env`` uses);
3. the ``.env`` file in the working directory (same names, same order), or the file named by the environment
   variable ``CTLENS_ENV_FILE`` (empty: no file; test suites set it empty so a stray ``.env`` cannot change them);
4. the defaults below.

A ``.env`` may hold other programs' variables too: names that are not settings are ignored.

Example:
    >>> from ctlens.core.settings import get_settings
    >>> get_settings().max_archive_bytes > 0
    True
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, DotEnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from ctlens.core.errors import CTLensError

ENV_FILE_VARIABLE = "CTLENS_ENV_FILE"
"""Environment variable naming the dotenv file to read (default ``.env`` in the working directory; empty: none)."""


class Settings(BaseSettings):
    """Runtime settings; each field can be set as ``CTLENS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CTLENS_", env_file=".env", extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the dotenv file (see the module docstring), then secrets.

        Unknown keyword arguments are refused (a typo must not pass silently), unknown ``.env`` names ignored.
        """
        given = set(getattr(init_settings, "init_kwargs", {}) or {})
        unknown = sorted(given - set(settings_cls.model_fields) - {"CTLENS_GEMINI_API_KEY", "GENAI_API_KEY"})
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
        chosen = os.environ.get(ENV_FILE_VARIABLE)
        if chosen is not None:
            dotenv_settings = DotEnvSettingsSource(settings_cls, env_file=chosen or None)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    data_dir: Path = Path("../shared/data")
    """Folder with sample data (the repository's sibling ``shared/data`` by default)."""
    decode_workers: int = 0
    """Threads for decoding DICOM pixel data; 0 means one per CPU core."""
    max_archive_bytes: int = 8 * 1024**3
    """Largest decompressed size accepted from one compressed input: a zip archive (all members together), a
    gzip / bzip2 / xz stream (``.nii.gz``), the voxels a NRRD / MetaImage header declares."""
    max_archive_ratio: float = 100.0
    """Largest decompressed/compressed size ratio accepted for any compressed input: each zip member (small ones
    too), a whole zip, a gzip / bzip2 / xz stream, NRRD / MetaImage compressed voxels (real CT compresses 2-5x)."""
    max_archive_members: int = 100_000
    """Most files accepted from one zip archive (the service also caps them at ``max_upload_files``)."""

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
    gemini_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("gemini_api_key", "CTLENS_GEMINI_API_KEY", "GENAI_API_KEY")
    )
    """Google Gemini API key: ``CTLENS_GEMINI_API_KEY``, or ``GENAI_API_KEY`` (ScanSage's name) when that is unset."""
    gemini_base_url: str | None = None
    gemini_model: str = "gemini-2.5-flash"
    no_auth: bool = False
    """Local use without API keys (``ctlens serve --no-auth``): requests without a key act as one local owner.
    Only for a service bound to a loopback address; requests from other addresses still need a key."""
    user_models_dir: Path | None = None
    """A folder of your own classifiers (``*.h5`` / ``*.keras``: Keras 3 on the torch backend; ``*.onnx``:
    onnxruntime) run on every analysed study; ``ctlens serve`` uses ``./models`` when unset. Their outputs are
    model outputs, not diagnoses."""
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
    """Read the settings from the environment (and the dotenv file) now; a bad value is one ``CTLensError`` line.

    Example:
        >>> import os
        >>> os.environ["CTLENS_WORKERS"] = "many"
        >>> try:
        ...     get_settings()
        ... except CTLensError as exc:
        ...     print(exc.reason.split(":")[0])
        invalid setting CTLENS_WORKERS
        >>> del os.environ["CTLENS_WORKERS"]
    """
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        name = field if field.isupper() else "CTLENS_" + field.upper()  # an alias (GENAI_API_KEY) stays as is
        raise CTLensError(
            f"invalid setting {name}: {first.get('msg', 'invalid value')}",
            hint="set in the environment or a .env file in the working directory",
        ) from None


def is_loopback_host(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine (``127.0.0.0/8``, ``::1``, localhost).

    Example:
        >>> [is_loopback_host(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::", "192.168.1.5")]
        [True, True, True, False, False, False]
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def no_auth_refusal(host: str) -> str | None:
    """Why ``--no-auth`` may not serve on ``host`` (one line), or None when ``host`` is a loopback address.

    Example:
        >>> no_auth_refusal("127.0.0.1") is None
        True
        >>> no_auth_refusal("0.0.0.0")
        "--no-auth is for local use only: bind to 127.0.0.1 (or ::1), not '0.0.0.0'; other hosts need API keys"
    """
    if is_loopback_host(host):
        return None
    return f"--no-auth is for local use only: bind to 127.0.0.1 (or ::1), not {host!r}; other hosts need API keys"
