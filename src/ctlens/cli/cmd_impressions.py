"""``ctlens clip impressions``: fill missing report impressions with an LLM (few-shot, text only).

The command joins the ``clip`` sub-app of :mod:`ctlens.cli.cmd_clip` (Typer collects a sub-app's commands
only when the CLI runs, so the order in which the ``cmd_*`` modules register does not matter).

Example:
    >>> import typer
    >>> from typer.testing import CliRunner
    >>> from ctlens.cli.cmd_clip import register as register_clip
    >>> app = typer.Typer(); register_clip(app); register(app)
    >>> CliRunner().invoke(app, ["clip", "impressions", "--help"]).exit_code
    0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors


@one_line_errors
def impressions_cmd(
    reports: Annotated[Path, typer.Option(help="reports CSV (CT-RATE layout: VolumeName, Findings_EN, ...)")],
    out: Annotated[Path, typer.Option(help="output CSV with the missing impressions filled in")],
    provider: Annotated[
        str | None, typer.Option(help="openai (also vLLM/Ollama via CTLENS_OPENAI_BASE_URL), anthropic, gemini")
    ] = None,
    examples: Annotated[int, typer.Option(help="few-shot examples (first complete rows of the file)")] = 3,
    limit: Annotated[int | None, typer.Option(help="send at most this many rows")] = None,
    findings_column: Annotated[str, typer.Option(help="findings column")] = "Findings_EN",
    impressions_column: Annotated[str, typer.Option(help="impressions column")] = "Impressions_EN",
) -> None:
    """Generate impressions for rows that have findings but no impression (only the findings are sent)."""
    from ctlens.llm.impressions import generate_impressions

    report = generate_impressions(
        reports,
        out,
        provider=provider,
        examples=examples,
        findings_column=findings_column,
        impressions_column=impressions_column,
        limit=limit,
    )
    cost = "unknown" if report.cost_usd is None else f"~${report.cost_usd:.4f}"
    typer.echo(
        f"wrote {out}: {report.generated} of {report.missing} missing impressions generated "
        f"({len(report.failed)} failed, {report.skipped} over --limit) with {report.provider}/{report.model}; "
        f"{report.input_tokens} input + {report.output_tokens} output tokens, cost {cost}"
    )
    for row_id, reason in list(report.failed.items())[:10]:
        typer.echo(f"  failed {row_id}: {reason}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``impressions`` to the ``clip`` sub-app (or, without it, ``ctlens impressions`` at the top level)."""
    try:
        from ctlens.cli.cmd_clip import clip_app
    except ImportError:  # pragma: no cover - cmd_clip is part of ctlens; kept so this module stands alone
        app.command("impressions")(impressions_cmd)
        return
    if not any(cmd.name == "impressions" for cmd in clip_app.registered_commands):
        clip_app.command("impressions")(impressions_cmd)
