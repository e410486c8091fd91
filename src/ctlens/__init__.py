"""ctlens: AI on CT scans. One core type (`Volume`), five jobs.

Example:
    >>> import ctlens, numpy as np
    >>> v = ctlens.Volume(np.zeros((2, 2, 2), np.int16))
    >>> v.shape
    (2, 2, 2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume

__version__ = "0.1.0"
__all__ = ["CTLensError", "Volume", "load", "load_volumes", "save", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from ctlens.io.loader import load, load_volumes, save


def __getattr__(name: str) -> Any:
    """Import the IO entry points lazily, so ``import ctlens`` stays fast."""
    if name in ("load", "load_volumes", "save"):
        from ctlens.io import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'ctlens' has no attribute {name!r}")
