"""Shared test setup.

``--import-mode=importlib`` does not put test folders on ``sys.path``, so helper modules that tests
import by name (``tests/io/dicom_factory.py``) are made importable here, once, for every test.
"""

from __future__ import annotations

import sys
from pathlib import Path

_IO_TESTS = str(Path(__file__).resolve().parent / "io")
if _IO_TESTS not in sys.path:
    sys.path.insert(0, _IO_TESTS)
