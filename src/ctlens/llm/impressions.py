"""Fill missing report impressions from the findings with a few-shot prompt through ctlens's LLM providers.

For every row of a reports CSV (CT-RATE layout) whose impression is missing (empty, ``NaN``, ``None``) but
whose findings text exists, the provider is asked for an impression. The prompt is text only: a system
instruction, then ``examples`` earlier ``(findings -> impression)`` pairs as conversation turns (the first
rows of the file that have both, in file order, so the same file always gives the same prompt), then the
target findings. Nothing else from the row (no volume name, no other column) leaves the process.

The output CSV keeps every input row and column, fills the generated impressions in and adds
``<impressions>_generated`` (``1`` generated now, ``0`` otherwise) and ``<impressions>_error`` (why a row
failed; the rest go on). An OpenAI-compatible ``base_url`` (``CTLENS_OPENAI_BASE_URL``) covers a local
vLLM or Ollama server.

The offline provider cannot write impressions: asking for it (or ``auto`` with no key configured) raises
:class:`~ctlens.core.errors.LLMProviderError` before anything is written.

Example:
    >>> from ctlens.llm.providers import ChatPrompt
    >>> p = few_shot_prompt("No nodules.", [("Small effusion.", "Pleural effusion.")])
    >>> p.history, "No nodules." in p.question
    ([('user', 'Findings:\\nSmall effusion.'), ('assistant', 'Pleural effusion.')], True)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctlens.core.errors import CorruptFileError, CTLensError, LLMProviderError
from ctlens.core.settings import Settings
from ctlens.data.ct_report import is_missing_text, read_csv_rows
from ctlens.io.files import atomic_output
from ctlens.llm.providers import ChatPrompt, Provider, get_provider

__all__ = ["IMPRESSION_SYSTEM", "ImpressionReport", "few_shot_prompt", "generate_impressions"]

IMPRESSION_SYSTEM = (
    "You are a radiologist writing the IMPRESSION section of a chest CT report. You are given the FINDINGS "
    "section. Reply with the impression only: a few short sentences summarising the main findings, in the "
    "style of the examples, with no heading, no preamble and nothing that is not supported by the findings."
)
_NAME_COLUMNS = ("VolumeName", "volume_name", "name", "AccessionNo")


@dataclass
class ImpressionReport:
    """What :func:`generate_impressions` did: counts, failures per row, token use and estimated cost."""

    out_csv: Path
    provider: str
    model: str
    rows: int
    missing: int
    """Rows with findings but no impression (candidates)."""
    examples: int
    """Few-shot examples used in every prompt."""
    generated: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    """``{row id: reason}``; row id is the volume name if there is a name column, else ``row <n>``."""
    skipped: int = 0
    """Candidates left missing because of ``limit``."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    """Estimated USD; None when the provider's price for the model is unknown."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "out_csv": str(self.out_csv),
            "provider": self.provider,
            "model": self.model,
            "rows": self.rows,
            "missing": self.missing,
            "examples": self.examples,
            "generated": self.generated,
            "failed": dict(self.failed),
            "skipped": self.skipped,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }


def _findings_turn(findings: str) -> str:
    return "Findings:\n" + " ".join(findings.split())


def few_shot_prompt(findings: str, examples: list[tuple[str, str]], system: str = IMPRESSION_SYSTEM) -> ChatPrompt:
    """The prompt for one report: ``examples`` ``(findings, impression)`` pairs as turns, then ``findings``.

    Example:
        >>> few_shot_prompt("Clear lungs.", []).question.splitlines()[:2]
        ['Findings:', 'Clear lungs.']
    """
    history: list[tuple[str, str]] = []
    for ex_findings, ex_impression in examples:
        history += [("user", _findings_turn(ex_findings)), ("assistant", " ".join(ex_impression.split()))]
    question = _findings_turn(findings) + "\n\nWrite the impression."
    return ChatPrompt(question=question, context="", images=[], history=history, system=system)


def _column(columns: list[str], wanted: str) -> str | None:
    lower = {c.lower(): c for c in columns}
    return lower.get(wanted.lower())


def generate_impressions(
    reports_csv: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    provider: str | Provider | None = None,
    settings: Settings | None = None,
    examples: int = 3,
    findings_column: str = "Findings_EN",
    impressions_column: str = "Impressions_EN",
    limit: int | None = None,
    progress: bool = True,
) -> ImpressionReport:
    """Write ``out_csv``: ``reports_csv`` with missing impressions generated from the findings.

    ``provider`` is a provider name (``openai``, ``anthropic``, ``gemini``; default ``settings.llm_provider``)
    or a :class:`Provider`. ``limit`` caps how many rows are sent (the rest stay missing). A failed request
    is recorded in the row's error column and in :attr:`ImpressionReport.failed`; the other rows go on.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "r.csv").write_text("VolumeName,Findings_EN\\nv_1_a_1,x\\n")
        >>> s = Settings(llm_provider="auto", anthropic_api_key=None, openai_api_key=None, openai_base_url=None,
        ...              gemini_api_key=None)
        >>> try:
        ...     generate_impressions(d / "r.csv", d / "o.csv", settings=s)
        ... except LLMProviderError as exc:
        ...     print(exc.reason[:33], (d / "o.csv").exists())
        the offline provider cannot write False
    """
    if examples < 0:
        raise CTLensError(f"examples must be >= 0, not {examples}")
    src = Path(reports_csv)
    columns, rows = read_csv_rows(src)
    find_col = _column(columns, findings_column)
    if find_col is None:
        raise CorruptFileError(f"no findings column {findings_column!r} in {columns[:8]}", path=src)
    imp_col = _column(columns, impressions_column) or impressions_column
    gen_col, err_col = f"{imp_col}_generated", f"{imp_col}_error"
    out_columns = columns + [c for c in (imp_col, gen_col, err_col) if c not in columns]
    name_col = next((c for c in _NAME_COLUMNS if c in columns), None)

    with_findings = [i for i, r in enumerate(rows) if not is_missing_text(r.get(find_col))]
    complete = [i for i in with_findings if not is_missing_text(rows[i].get(imp_col))]
    todo = [i for i in with_findings if is_missing_text(rows[i].get(imp_col))]
    shots = [(rows[i][find_col], rows[i][imp_col]) for i in complete[:examples]]
    send = todo if limit is None else todo[: max(0, limit)]

    llm = provider if isinstance(provider, Provider) else get_provider(settings or Settings(), provider)
    if llm.offline:
        raise LLMProviderError(
            "the offline provider cannot write impressions: no language model is configured",
            path=src,
            hint="set CTLENS_OPENAI_BASE_URL (vLLM/Ollama) or an API key, or pass --provider",
        )
    report = ImpressionReport(
        out_csv=Path(out_csv),
        provider=llm.name,
        model=llm.model,
        rows=len(rows),
        missing=len(todo),
        examples=len(shots),
        skipped=len(todo) - len(send),
    )
    for row in rows:
        row[gen_col], row[err_col] = "0", ""

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns_ui = (TextColumn("impressions"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns_ui, transient=True, disable=not progress or not send) as bar:
        task = bar.add_task("impressions", total=len(send))
        for i in send:
            row = rows[i]
            row_id = row[name_col] if name_col and row.get(name_col) else f"row {i + 1}"
            try:
                text, done = llm.answer(few_shot_prompt(row[find_col], shots))
                report.input_tokens += done.usage.input_tokens
                report.output_tokens += done.usage.output_tokens
                if report.cost_usd is not None:
                    report.cost_usd = None if done.cost_usd is None else round(report.cost_usd + done.cost_usd, 6)
                text = text.strip()
                if not text:
                    raise LLMProviderError("the model gave an empty answer")
            except Exception as exc:  # one failed row must not stop the others
                reason = exc.reason if isinstance(exc, CTLensError) else f"{type(exc).__name__}: {exc}"
                row[err_col] = report.failed[row_id] = reason
            else:
                row[imp_col], row[gen_col] = text, "1"
                report.generated += 1
            bar.advance(task)

    with atomic_output(report.out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=out_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: ("" if r.get(c) is None else r[c]) for c in out_columns} for r in rows)
    return report
