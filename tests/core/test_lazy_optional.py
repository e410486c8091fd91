"""ctlens.core.lazy and ctlens.core.optional: light imports, clear errors for missing extras."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ctlens.core.errors import MissingDependencyError
from ctlens.core.lazy import lazy_exports
from ctlens.core.optional import require


def test_lazy_export_imports_on_first_use() -> None:
    get = lazy_exports("pkg", {"sqrt": "math"})
    assert get("sqrt")(9.0) == 3.0
    with pytest.raises(AttributeError, match="pkg"):
        get("nope")


def test_require_names_the_extra_when_missing() -> None:
    with pytest.raises(MissingDependencyError, match=r"ctlens\[imaging\]"):
        require("ctlens_no_such_module_xyz", extra="imaging")


def test_importing_ctlens_does_not_import_torch_or_fastapi() -> None:
    code = "import sys, ctlens; print(sorted(m for m in ('torch', 'fastapi') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
