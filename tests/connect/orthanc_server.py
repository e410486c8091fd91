"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on loopback ports, in a temporary folder.

Tests call :func:`start_orthanc`; it skips the calling test, saying why, when Orthanc is not installed
(``scripts/system-deps.sh`` installs it). Orthanc has no bind-address setting: ``RemoteAccessAllowed: false``
makes its REST/DICOMweb port answer loopback clients only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ports import free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass
class Orthanc:
    """A running Orthanc: its REST root, DICOMweb root, DICOM port and AE title."""

    process: subprocess.Popen
    folder: Path
    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"
    modalities: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def rest(self, path: str, **kwargs) -> httpx.Response:
        """GET a REST path (``/studies``) and raise on HTTP errors."""
        response = httpx.get(self.url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_orthanc(folder: Path, modalities: dict[str, tuple[str, str, int]] | None = None) -> Orthanc:
    """Start Orthanc with a fresh configuration and storage under ``folder``; ``modalities`` are DICOM peers
    (name -> (AE title, host, port)) it may send to (C-MOVE / C-STORE destinations).

    Example:
        >>> server = start_orthanc(tmp_path)  # doctest: +SKIP
        >>> server.rest("/system").json()["Version"]  # doctest: +SKIP
    """
    if not Path(ORTHANC).exists() or not DICOMWEB_PLUGIN.exists():
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (Debian orthanc, orthanc-dicomweb)")
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "ctlens-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True,
        "UnknownSopClassAccepted": True,
        "DicomModalities": {k: list(v) for k, v in (modalities or {}).items()},
        "SaveJobs": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "StudiesMetadata": "Full"},
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 (kept open for the process's life)
    process = subprocess.Popen([ORTHANC, str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Orthanc(process, folder, http_port, dicom_port, modalities=modalities or {})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited ({process.returncode}): {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/system", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer on port {http_port} within 60 s")
