"""Shared test setup.

``--import-mode=importlib`` does not put test folders on ``sys.path``, so helper modules that tests
import by name (``tests/io/dicom_factory.py``) are made importable here, once, for every test.
"""

from __future__ import annotations

import sys
from pathlib import Path

for _folder in (Path(__file__).resolve().parent, *(Path(__file__).resolve().parent / d for d in ("io", "connect"))):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
