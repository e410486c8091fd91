"""Shared test setup.

``--import-mode=importlib`` does not put test folders on ``sys.path``, so helper modules that tests
import by name (``tests/io/dicom_factory.py``) are made importable here, once, for every test.
No ``.env`` file is read (``CTLENS_ENV_FILE`` is empty) unless a test asks for one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# A .env in the working directory (ctlens reads one, like ScanSage did) must not change the tests; tests that
# exercise .env set CTLENS_ENV_FILE themselves.
os.environ["CTLENS_ENV_FILE"] = ""

_TESTS = Path(__file__).resolve().parent
for _folder in (_TESTS, *(_TESTS / d for d in ("io", "connect", "cache"))):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """A fresh Orthanc (REST + DICOMweb + DICOM) on loopback ports, stopped after the module (archive tests)."""
    from orthanc_server import start_orthanc

    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()
