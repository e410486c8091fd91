"""Core types: `Volume`, the error family, settings and the optional-dependency helper."""

from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume

__all__ = ["CTLensError", "Volume"]
