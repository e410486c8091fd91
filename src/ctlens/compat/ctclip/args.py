"""What the ctclip scripts share: the seed's boolean flags, DINOv2 names, and one-line errors instead of tracebacks.

Example:
    >>> str2bool("False"), str2bool("yes"), DINOV2_MODELS["dinov2_vitb14"]
    (False, True, 'facebook/dinov2-base')
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ctlens.core.errors import CTLensError

__all__ = ["DINOV2_MODELS", "run_script", "str2bool"]

DINOV2_MODELS = {
    "dinov2_vits14": "facebook/dinov2-small",
    "dinov2_vitb14": "facebook/dinov2-base",
    "dinov2_vitl14": "facebook/dinov2-large",
    "dinov2_vitg14": "facebook/dinov2-giant",
}
"""torch.hub names of the seed -> the same weights' Hugging Face ids (read from the local cache only)."""


def str2bool(text: str | bool) -> bool:
    """``--flag True`` / ``--flag false`` / ``--flag 1`` as the seed's scripts accepted them."""
    if isinstance(text, bool):
        return text
    value = text.strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def run_script(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; a :class:`CTLensError` or bad value becomes ``ctlens: error: <one line>`` and exit status 2.

    Example:
        >>> def bad(argv):
        ...     raise ValueError("no")
        >>> run_script(bad, [])
        2
    """
    try:
        return main(argv)
    except CTLensError as exc:
        print(f"ctlens: error: {exc.one_line()}", file=sys.stderr)
    except (ValueError, OSError) as exc:
        print(f"ctlens: error: {exc}", file=sys.stderr)
    return 2
