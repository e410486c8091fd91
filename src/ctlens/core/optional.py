"""Import optional (extra) dependencies with an error that says which extra to install.

Example:
    >>> numpy = require("numpy", extra="core")
    >>> numpy.__name__
    'numpy'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ctlens.core.errors import MissingDependencyError


def require(module: str, *, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the optional dependency '{module}' is not installed ({exc})",
            hint=f"pip install 'ctlens[{extra}]'",
        ) from exc
