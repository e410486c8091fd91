"""Fuzz tests: helper modules of this folder importable by name, and the short hypothesis profile of ``make test``.

``CTLENS_FUZZ_EXAMPLES`` raises the number of examples per reader, ``CTLENS_FUZZ_RANDOM=1`` draws fresh examples
instead of the fixed ones (``scripts/fuzz.py`` runs the long campaigns).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

settings.register_profile(
    "ctlens-fuzz-short",
    max_examples=int(os.environ.get("CTLENS_FUZZ_EXAMPLES", "40")),
    deadline=None,  # the per-input time limit is the harness's own (fuzz_harness.TIME_LIMIT_S), not hypothesis'
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    # the same examples on every run of ``make test`` (a CI run passes or fails on the code, not on the draw);
    # CTLENS_FUZZ_RANDOM=1 draws fresh ones, and ``make fuzz`` always explores
    derandomize=os.environ.get("CTLENS_FUZZ_RANDOM", "") not in ("1", "true", "yes"),
    database=None,
)
