"""One progress display for every long ``ctlens`` step: a rich bar or spinner on stderr, one final line.

:func:`progress_step` yields a :class:`StepProgress`, the callback the lower layers take
(``progress(done, total)`` plus ``describe(text)``, see :mod:`ctlens.core.progress`). On a terminal it draws a
spinner, what is being done, a bar when the work is counted, the counts and the elapsed / remaining time; when
stderr is not a terminal (a log file, a pipe, CI) it draws nothing. Either way, a step that ends well prints one
line, ``ctlens: <title>: done in 12.3 s (<what> 200/200)`` (the counts only for counted work); a failing step
prints nothing more than its error.

Example:
    >>> import io
    >>> from rich.console import Console
    >>> out = io.StringIO()
    >>> with progress_step("training", console=Console(file=out)) as progress:
    ...     for step in range(1, 4):
    ...         progress(step, 3)
    >>> out.getvalue().startswith("ctlens: training: done in ")
    True
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console

__all__ = ["StepProgress", "progress_step"]


class StepProgress:
    """The callback a step reports to: ``progress(done, total)`` (total 0: unknown) and ``describe(text)``.

    A count that goes back or a new total starts a new phase of the same step (the bar starts again).

    Example:
        >>> step = StepProgress("export")
        >>> step.describe("a.nii.gz"); step(1, 4)
        >>> step.summary(2.0)
        'export: done in 2.0 s (a.nii.gz 1/4)'
    """

    def __init__(self, title: str, bar: Any = None) -> None:
        self.title = title
        self.detail = ""
        self.done = 0
        self.total = 0
        self._bar = bar
        self._task = bar.add_task(title, total=None, counts="") if bar is not None else None

    def __call__(self, done: int, total: int) -> None:
        done, total = int(done), int(total or 0)
        if self._bar is not None and (done < self.done or total != self.total):
            self._bar.reset(self._task)  # a new phase: fresh elapsed / remaining estimates
        self.done, self.total = done, total
        self._refresh()

    def describe(self, text: str) -> None:
        """Say what the counted work now is (shown after the title); the counts stay."""
        self.detail = " ".join(str(text).split())
        self._refresh()

    def phase(self, text: str) -> None:
        """Start an uncounted part of the step (``"reading"``, ``"writing"``): a spinner with ``text``."""
        if self._bar is not None and self.total:
            self._bar.reset(self._task)
        self.done, self.total = 0, 0
        self.describe(text)

    def _refresh(self) -> None:
        if self._bar is None:
            return
        description = f"{self.title}: {self.detail}" if self.detail else self.title
        total = self.total or None
        counts = f"{self.done}/{self.total}" if self.total else (str(self.done) if self.done else "")
        self._bar.update(self._task, description=description, completed=self.done, total=total, counts=counts)

    def summary(self, seconds: float) -> str:
        """The final line, without the ``ctlens: `` prefix."""
        line = f"{self.title}: done in {seconds:.1f} s"
        if not self.total:  # a spinner's last phase name says nothing once it is done
            return line
        return (
            f"{line} ({self.detail} {self.done}/{self.total})" if self.detail else f"{line} ({self.done}/{self.total})"
        )


@contextlib.contextmanager
def progress_step(title: str, *, console: Console | None = None) -> Iterator[StepProgress]:
    """Show the progress of one step (module doc); yields the callback to hand to the lower layer.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with progress_step("analysing", console=Console(file=out)) as progress:
        ...     progress.describe("lungs")
        >>> out.getvalue().startswith("ctlens: analysing: done in ")
        True
    """
    console = console if console is not None else Console(stderr=True)
    start = time.perf_counter()
    if console.is_terminal:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.fields[counts]}", markup=False),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True, redirect_stdout=False) as bar:
            step = StepProgress(title, bar)
            yield step
    else:
        step = StepProgress(title)
        yield step
    console.print(f"ctlens: {step.summary(time.perf_counter() - start)}", markup=False, highlight=False, soft_wrap=True)
