"""``ctlens payload``: a de-identified, token-budgeted LLM payload of a CT series (JSON + preview PNG).

The payload is the one the service sends for a chat question (:func:`ctlens.llm.payload.build_payload` with the
analysis findings): the analysis runs first (:func:`ctlens.analysis.analyze`), its measurements and top
``--candidates`` go into the text block, and each candidate gets full-resolution crops. ``--no-analysis``
sends the images and the question only. Without ``--question`` the model is asked :data:`DEFAULT_QUESTION`.

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
from ctlens.cli.series import SeriesOption

DEFAULT_QUESTION = (
    "Describe the notable findings in this CT: what each is, where (image and slice) and how large, "
    "and how certain you are; say if the automated findings look wrong."
)
"""The question asked when ``--question`` is not given."""

SERVICE_CANDIDATES = 5
"""Candidates sent by default: as many as the service sends."""


def register(app: typer.Typer) -> None:
    """Add the ``payload`` command to ``app``."""

    @app.command()
    @one_line_errors
    def payload(
        path: Annotated[Path, typer.Argument(help="DICOM folder/zip/file, NIfTI, NRRD/MHA")],
        question: Annotated[
            str, typer.Option("--question", "-q", help="the question for the model")
        ] = DEFAULT_QUESTION,
        provider: Annotated[str, typer.Option(help="anthropic | openai | gemini")] = "anthropic",
        model: Annotated[str | None, typer.Option(help="model id (default: one per provider)")] = None,
        budget: Annotated[int, typer.Option(help="token budget of the whole request")] = 6000,
        out: Annotated[Path, typer.Option(help="payload JSON (request body, accounting, tiles)")] = Path(
            "payload.json"
        ),
        preview: Annotated[Path | None, typer.Option(help="PNG with all images, to look at")] = None,
        series: SeriesOption = None,
        window: Annotated[list[str] | None, typer.Option("--window", "-w", help="window name, repeatable")] = None,
        rgb: Annotated[bool, typer.Option(help="pack lung / mediastinum / bone as RGB")] = False,
        detail: Annotated[str | None, typer.Option(help="OpenAI detail or Gemini media resolution")] = None,
        analysis: Annotated[
            bool, typer.Option("--analysis/--no-analysis", help="add the analysis findings and candidate crops")
        ] = True,
        candidates: Annotated[
            int, typer.Option(min=0, help="most analysis candidates sent (text and crops), best first")
        ] = SERVICE_CANDIDATES,
    ) -> None:
        """Build a payload of PATH for a vision LLM within --budget tokens; writes --out and --preview."""
        import dataclasses

        from rich.console import Console

        from ctlens.cli.progress import progress_step
        from ctlens.cli.series import load_study
        from ctlens.llm.payload import build_payload

        findings = None
        with progress_step(f"payload of {path.name}") as step:
            step.phase("reading")
            volume = load_study(path, series, uneven="resample")
            if analysis:
                from ctlens.analysis import analyze

                step.phase("analysing")
                found = analyze(volume)
                findings = dataclasses.replace(found, candidates=found.candidates[:candidates])
            result = build_payload(
                volume,
                question,
                provider=provider,
                model=model,
                token_budget=budget,
                findings=findings,
                windows=tuple(window or ("lung", "mediastinum")),
                rgb_windows=rgb,
                detail=detail,
                progress=step,
            )
            result.save_json(out)
            if preview is not None:
                result.save_preview(preview)
        crops = sum(1 for im in result.images if im.title == "candidate crops")
        what = f"{len(findings.candidates)} candidate(s), {crops} crop image(s); " if findings is not None else ""
        Console().print(
            f"wrote {out}: {len(result.images)} images for {result.provider}/{result.model}, {what}"
            f"<= {result.token_estimate} tokens of {budget} ({result.image_tokens} image + "
            f"<= {result.text_token_bound} text)" + (f"; preview {preview}" if preview else "")
        )
