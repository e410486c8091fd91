"""Package attributes imported on first use, so ``import ctlens.<layer>`` stays light.

Example:
    >>> getattr_ = lazy_exports("ctlens", {"Volume": "ctlens.core.volume"})
    >>> getattr_("Volume").__name__
    'Volume'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from typing import Any


def lazy_exports(
    package: str,
    exports: Mapping[str, str],
    *,
    needs_torch: Collection[str] = (),
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) and returns its ``name``.

    Names from modules listed in ``needs_torch`` first check that torch is installed, so a missing extra
    gives a clear :class:`~ctlens.core.errors.MissingDependencyError` instead of an ImportError.

    Example:
        >>> lazy_exports("ctlens", {})("nothing")
        Traceback (most recent call last):
        ...
        AttributeError: module 'ctlens' has no attribute 'nothing'
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if module in needs_torch:
            from ctlens.core.optional import require

            require("torch", extra="ml")
        return getattr(importlib.import_module(module), name)

    return __getattr__
