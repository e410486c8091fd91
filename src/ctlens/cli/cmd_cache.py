"""``ctlens cache build DATA_DIR`` and ``ctlens cache stats DATA_DIR``.

Example:
    >>> import typer
    >>> from typer.testing import CliRunner
    >>> app = typer.Typer(); register(app)
    >>> CliRunner().invoke(app, ["cache", "--help"]).exit_code
    0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ctlens.cli.errors import one_line_errors

console = Console()
cache_app = typer.Typer(help="Build and inspect the uint8 cache of a data folder (raw/ -> processed/).")

DataDir = Annotated[Path, typer.Argument(help="data folder holding raw/ (one folder or file per study)")]
Spacing = Annotated[tuple[float, float, float], typer.Option(help="target spacing (slice, in-plane, in-plane) in mm")]
Patch = Annotated[tuple[int, int, int], typer.Option(help="token patch (slice, in-plane, in-plane) in voxels")]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _failure_table(failures: list, title: str) -> Table:
    table = Table(title=title)
    for col in ("study", "image", "reason", "detail"):
        table.add_column(col, overflow="fold")
    for f in failures:
        table.add_row(f.study, f.image, f.reason, f.detail)
    return table


@cache_app.command("build")
@one_line_errors
def build(
    data_dir: DataDir,
    workers: Annotated[int, typer.Option("--workers", "-w", help="parallel workers (1 = in this process)")] = 8,
    force: Annotated[bool, typer.Option(help="rebuild every entry")] = False,
    executor: Annotated[str, typer.Option(help="process | thread | serial | ray")] = "process",
    retry_failed: Annotated[bool, typer.Option(help="retry images that failed before")] = False,
    spacing: Spacing = (4.0, 1.0, 1.0),
    patch: Patch = (4, 16, 16),
) -> None:
    """Prepare every image of DATA_DIR/raw into DATA_DIR/processed (resumable; bad images are reported)."""
    from ctlens.cache import CacheManager
    from ctlens.cli.progress import progress_step

    if executor not in ("process", "thread", "serial", "ray"):
        raise typer.BadParameter(f"--executor must be process, thread, serial or ray, got {executor!r}")
    cache = CacheManager(data_dir, spacing, patch)
    with progress_step(f"cache of {data_dir.name}") as step:
        step.phase("scanning")
        report = cache.build_cache(
            num_workers=workers,
            force=force,
            executor=executor,  # type: ignore[arg-type]
            retry_failed=retry_failed,
            progress=step,
        )
    console.print(
        f"{data_dir}: {report.total} image(s): {report.built} built, {report.skipped} already done, "
        f"{len(report.failed)} failed ({report.seconds:.1f} s)"
    )
    if report.failed:
        console.print(_failure_table(report.failed, "images that could not be cached"))


@cache_app.command("stats")
@one_line_errors
def stats(
    data_dir: DataDir,
    spacing: Spacing = (4.0, 1.0, 1.0),
    patch: Patch = (4, 16, 16),
) -> None:
    """Show what the cache of DATA_DIR holds: complete, failed (with reasons), stale and missing entries."""
    from ctlens.cache import CacheManager

    s = CacheManager(data_dir, spacing, patch).get_cache_stats()
    table = Table(title=f"cache of {data_dir}")
    table.add_column("")
    table.add_column("count", justify="right")
    rows = [
        ("studies", s.studies),
        ("images", s.entries),
        ("complete", s.complete),
        ("failed", s.failed),
        ("stale (source or settings changed)", s.stale),
        ("missing", s.missing),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    for mode, n in sorted(s.by_mode.items()):
        table.add_row(f"  {mode}", str(n))
    table.add_row("size on disk", _size(s.bytes))
    console.print(table)
    if s.failures:
        console.print(_failure_table(s.failures, "failed images"))
    if s.stale_entries or s.missing_entries:
        todo = s.stale_entries + s.missing_entries
        console.print(f"to build: {', '.join(todo[:10])}{' ...' if len(todo) > 10 else ''} (run `ctlens cache build`)")


def register(app: typer.Typer) -> None:
    """Add the ``cache`` command group to the ``ctlens`` app."""
    app.add_typer(cache_app, name="cache")
