"""Rich progress bars for interpolation work (one place, so every method looks the same).

``enabled`` may also be a progress callback (:mod:`ctlens.core.progress`): it is then told the counts and what
is being done, and no bar is drawn here (the command line draws its own).

Example:
    >>> sum(progress_iter(range(3), "adding", enabled=False))
    3
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ctlens.core.progress import ProgressCallback, counted

T = TypeVar("T")

__all__ = ["progress_iter"]


def progress_iter(
    items: Iterable[T], description: str, *, total: int | None = None, enabled: bool | ProgressCallback = True
) -> Iterator[T]:
    """Yield ``items`` while showing a transient rich progress bar (on stderr) when ``enabled``.

    A callable ``enabled`` gets ``(done, total)`` and ``description`` instead of a bar.

    Example:
        >>> list(progress_iter([1, 2], "x", enabled=False))
        [1, 2]
    """
    if callable(enabled):
        yield from counted(items, enabled, total=total, description=description)
        return
    if not enabled:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    from rich.console import Console

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
