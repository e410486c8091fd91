"""``ctlens payload``: a de-identified, token-budgeted LLM payload of a CT series (JSON + preview PNG).

Example:
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    >>> [c.callback.__name__ for c in app.registered_commands]
    ['payload']
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctlens.cli.errors import one_line_errors


def register(app: typer.Typer) -> None:
    """Add the ``payload`` command to ``app``."""

    @app.command()
    @one_line_errors
    def payload(
        path: Annotated[Path, typer.Argument(help="DICOM folder/zip/file, NIfTI, NRRD/MHA")],
        question: Annotated[str, typer.Option("--question", "-q", help="the question for the model")],
        provider: Annotated[str, typer.Option(help="anthropic | openai | gemini")] = "anthropic",
        model: Annotated[str | None, typer.Option(help="model id (default: one per provider)")] = None,
        budget: Annotated[int, typer.Option(help="token budget of the whole request")] = 6000,
        out: Annotated[Path, typer.Option(help="payload JSON (request body, accounting, tiles)")] = Path(
            "payload.json"
        ),
        preview: Annotated[Path | None, typer.Option(help="PNG with all images, to look at")] = None,
        series: Annotated[str | None, typer.Option("--series", "-s", help="series index, UID or text")] = None,
        window: Annotated[list[str] | None, typer.Option("--window", "-w", help="window name, repeatable")] = None,
        rgb: Annotated[bool, typer.Option(help="pack lung / mediastinum / bone as RGB")] = False,
        detail: Annotated[str | None, typer.Option(help="OpenAI detail or Gemini media resolution")] = None,
    ) -> None:
        """Build a payload of PATH for a vision LLM within --budget tokens; writes --out and --preview."""
        from rich.console import Console

        from ctlens.io import load
        from ctlens.llm.payload import build_payload

        sel: int | str | None = int(series) if series is not None and series.isdigit() else series
        volume = load(path, series=sel)
        result = build_payload(
            volume,
            question,
            provider=provider,
            model=model,
            token_budget=budget,
            windows=tuple(window or ("lung", "mediastinum")),
            rgb_windows=rgb,
            detail=detail,
        )
        result.save_json(out)
        if preview is not None:
            result.save_preview(preview)
        console = Console()
        console.print(
            f"wrote {out}: {len(result.images)} images for {result.provider}/{result.model}, "
            f"<= {result.token_estimate} tokens of {budget} ({result.image_tokens} image + "
            f"<= {result.text_token_bound} text)" + (f"; preview {preview}" if preview else "")
        )
