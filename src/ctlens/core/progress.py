"""Progress callbacks: how long work tells its caller how far it got, without drawing anything itself.

A progress callback is any ``progress(done, total)`` (``total`` 0 when unknown). One that also has a
``describe(text)`` method is told what the counted work is (``"self-supervised training"``, then
``"self-supervised inference"``); plain functions are fine too. The command line draws them
(:mod:`ctlens.cli.progress`); library callers pass a function, or leave the default of each function.

Example:
    >>> seen = []
    >>> list(counted("ab", lambda done, total: seen.append((done, total)), description="letters"))
    ['a', 'b']
    >>> seen
    [(0, 2), (1, 2), (2, 2)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``; may have ``describe(text)`` (see the module doc)."""

__all__ = ["ProgressCallback", "announce", "counted"]


def announce(progress: ProgressCallback | None, description: str) -> None:
    """Tell ``progress`` what the work now counted is, if it listens (has ``describe``).

    Example:
        >>> announce(lambda done, total: None, "training")  # a plain function ignores it
    """
    describe = getattr(progress, "describe", None)
    if callable(describe):
        describe(description)


def counted(
    items: Iterable[T], progress: ProgressCallback, *, total: int | None = None, description: str | None = None
) -> Iterator[T]:
    """Yield ``items``, calling ``progress(done, total)`` before the first and after each one.

    Example:
        >>> calls = []
        >>> sum(counted(iter([1, 2, 3]), lambda d, t: calls.append(d), total=3))
        6
        >>> calls
        [0, 1, 2, 3]
    """
    if total is None:
        total = len(items) if hasattr(items, "__len__") else 0  # type: ignore[arg-type]
    if description:
        announce(progress, description)
    progress(0, total)
    for done, item in enumerate(items, start=1):
        yield item
        progress(done, total)
