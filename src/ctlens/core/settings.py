"""Settings read from the environment (prefix ``CTLENS_``), never at import time.

Example:
    >>> from ctlens.core.settings import get_settings
    >>> get_settings().max_archive_bytes > 0
    True
"""

from __future__ import annotations

from pathlib import Path

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


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    return Settings()
