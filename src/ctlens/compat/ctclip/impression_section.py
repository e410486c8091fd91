"""``python -m ctlens.compat.ctclip.impression_section``: seed 003's impression generation flags over
:func:`ctlens.llm.impressions.generate_impressions` (what ``ctlens impressions`` runs).

``--target_file`` (reports CSV with ``Findings_EN`` / ``Impressions_EN``) ``--output_file`` (``.json``: a list
of ``{VolumeName, Impressions_EN, generated}`` records as the seed wrote; ``.csv``: the reports with impressions
filled) ``--num_examples`` (few-shot examples taken from rows that have both sections). The seed ran a local
model with vllm; ctlens talks to the provider in its settings (``CTLENS_LLM_PROVIDER``, ``CTLENS_*_API_KEY``,
``CTLENS_OPENAI_BASE_URL`` for a local vLLM / Ollama server). ``--provider`` and ``--limit`` are ctlens additions.

Example:
    >>> parser().parse_args(["--target_file", "r.csv", "--output_file", "o.json"]).num_examples
    8
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ctlens.compat.ctclip.args import run_script

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The seed's flags (and ctlens's additions)."""
    p = argparse.ArgumentParser(prog="impression_section.py", description="Fill missing impressions (ctlens)")
    p.add_argument("--target_file", required=True, type=Path)
    p.add_argument("--output_file", required=True, type=Path)
    p.add_argument("--num_examples", type=int, default=8)
    p.add_argument("--provider", default=None, help="openai | anthropic | gemini (default: settings)")
    p.add_argument("--limit", type=int, default=None, help="at most this many requests")
    return p


def _main(argv: Sequence[str] | None) -> int:
    from ctlens.io.files import atomic_output
    from ctlens.llm.impressions import generate_impressions

    a = parser().parse_args(argv)
    as_json = a.output_file.suffix.lower() == ".json"
    with tempfile.TemporaryDirectory(prefix="ctlens-impr-") as tmp:
        out_csv = Path(tmp) / "out.csv" if as_json else a.output_file
        report = generate_impressions(
            a.target_file, out_csv, provider=a.provider, examples=a.num_examples, limit=a.limit, progress=False
        )
        if as_json:
            with open(out_csv, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            with open(a.target_file, newline="", encoding="utf-8-sig") as fh:
                before = {r.get("VolumeName", ""): (r.get("Impressions_EN") or "") for r in csv.DictReader(fh)}
            records = [
                {
                    "VolumeName": r.get("VolumeName", ""),
                    "Impressions_EN": r.get("Impressions_EN", ""),
                    "generated": bool(r.get("Impressions_EN")) and not before.get(r.get("VolumeName", ""), ""),
                }
                for r in rows
            ]
            with atomic_output(a.output_file) as dest:
                dest.write_text(json.dumps(records, indent=1))
    print(f"{report.generated} impression(s) generated, {len(report.failed)} failed; wrote {a.output_file}")
    return 0 if not report.failed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; 0 when every missing impression was generated."""
    return run_script(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
