"""Fixtures of the archive tests: a real Orthanc per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from orthanc_server import Orthanc, start_orthanc


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """A fresh Orthanc (REST + DICOMweb + DICOM) on loopback ports, stopped after the module."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()
