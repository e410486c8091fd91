"""Fuzz every ctlens reader for a given time; corpus and findings stay outside the repository.

    python scripts/fuzz.py --seconds 600                 # each reader 10 minutes, one after the other
    python scripts/fuzz.py --reader ctz --seconds 60     # one reader
    python scripts/fuzz.py --engine atheris ...          # coverage-guided (atheris drives the same generators)

Each reader runs in its own child process (a crash or a hang there is recorded, not fatal to the others) under
the invariant of ``tests/fuzz/fuzz_harness.py``, with the structure-aware generators of ``tests/fuzz/gen_*.py``.
Engines: ``hypothesis`` (default) draws inputs from the generators in batches until the time is up; ``atheris``
(when installed: ``pip install atheris``) mutates the generators' choice bytes under libFuzzer's coverage
feedback (``hypothesis``'s ``fuzz_one_input``).

Folder (``--dir``, default ``$CTLENS_FUZZ_DIR`` or ``/tmp/ctlens-fuzz``), per reader: ``hypothesis-db/`` (the
examples database), ``corpus/`` (atheris), ``findings/`` (each failing input as a file of its reader's suffix,
with a ``.txt`` saying what failed; turn each into a regression test under ``tests/fuzz/regressions/``), and
``stats.json`` (executions, findings, seconds, line coverage of the reader's modules measured with coverage.py
when it is installed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUZZ_TESTS = ROOT / "tests" / "fuzz"


def _paths() -> None:
    for folder in (FUZZ_TESTS, ROOT / "src"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def _save_finding(folder: Path, data: bytes, suffix: str, message: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(data).hexdigest()[:16]
    path = folder / f"{name}{suffix}"
    path.write_bytes(data)
    (folder / f"{name}.txt").write_text(message + "\n")
    return path


class _Worker:
    """The fuzz loop of one reader inside its child process."""

    def __init__(self, name: str, folder: Path, deadline: float) -> None:
        _paths()
        from fuzz_harness import FuzzFailure, check_input
        from fuzz_readers import READERS

        self.reader = READERS[name]
        self.folder, self.deadline = folder, deadline
        self.check, self.failure = check_input, FuzzFailure
        self.executions, self.errors, self.findings = 0, 0, 0
        self.current = folder / "current.bin"

    def one(self, data: bytes, suffix: str) -> None:
        self.current.write_bytes(data)  # a crash leaves it for the parent to file as a finding
        self.current.with_suffix(".suffix").write_text(suffix)
        self.executions += 1
        try:
            outcome = self.check(self.reader.call, data, suffix)
        except self.failure as exc:
            self.findings += 1
            _save_finding(self.folder / "findings", exc.data, exc.suffix, str(exc))
            return
        self.errors += outcome.error is not None

    def stats(self, started: float) -> dict[str, Any]:
        return {
            "executions": self.executions,
            "ctlens_errors": self.errors,
            "findings": self.findings,
            "seconds": round(time.monotonic() - started, 1),
        }


def _module_file(module: str) -> str:
    return str(ROOT / "src" / (module.replace(".", "/") + ".py"))


def _coverage() -> Any:
    """coverage.py measuring every ctlens module, started before any of them is imported (None if missing)."""
    try:
        import coverage
    except ImportError:
        return None
    cov = coverage.Coverage(include=[str(ROOT / "src" / "ctlens" / "*")], data_file=None, branch=False)
    cov.start()
    return cov


def _coverage_report(cov: Any, modules: tuple[str, ...]) -> dict[str, Any]:
    cov.stop()
    out: dict[str, Any] = {}
    total_statements = total_missing = 0
    for module in modules:
        _, statements, _, missing, _ = cov.analysis2(_module_file(module))
        out[module] = round(100 * (len(statements) - len(missing)) / max(1, len(statements)), 1)
        total_statements += len(statements)
        total_missing += len(missing)
    out["total"] = round(100 * (total_statements - total_missing) / max(1, total_statements), 1)
    return out


def worker(name: str, folder: Path, seconds: float, engine: str, measure: bool) -> None:
    """Fuzz reader ``name`` for ``seconds``; write ``stats.json`` into ``folder``."""
    cov = _coverage() if measure and engine == "hypothesis" else None
    _paths()
    if engine == "atheris":
        import importlib

        import atheris

        with atheris.instrument_imports(include=["ctlens"]):  # coverage feedback from ctlens' own code only
            for module in (
                "ctlens.codec.series",
                "ctlens.io.image2d_reader",
                "ctlens.data.labels",
                "ctlens.io",
                "ctlens.io.archive",
                "ctlens.io.ct_rate",
                "ctlens.data.ct_report",
                "ctlens.models.clip3d.checkpoint",
            ):
                importlib.import_module(module)
    from fuzz_readers import READERS
    from hypothesis import HealthCheck, given, settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    started = time.monotonic()
    state = _Worker(name, folder, started + seconds)
    modules = READERS[name].modules
    for data, suffix in state.reader.seeds():
        state.one(data, suffix)
    stats_path = folder / "stats.json"

    @settings(
        max_examples=200 if engine == "hypothesis" else 10**9,
        deadline=None,
        database=DirectoryBasedExampleDatabase(str(folder / "hypothesis-db")),
        suppress_health_check=list(HealthCheck),
    )
    @given(state.reader.strategy)
    def run(case: tuple[bytes, str]) -> None:
        if time.monotonic() < state.deadline:
            state.one(*case)

    if engine == "atheris":
        corpus = folder / "corpus"
        corpus.mkdir(exist_ok=True)

        def one_input(buffer: bytes) -> None:
            run.hypothesis.fuzz_one_input(buffer)
            if state.executions % 50 == 0:
                stats_path.write_text(json.dumps({"engine": engine, **state.stats(started)}))

        flags = [f"-max_total_time={int(seconds)}", "-rss_limit_mb=4096", "-max_len=65536", "-timeout=60"]
        atheris.Setup([sys.argv[0], str(corpus), *flags], one_input)
        atheris.Fuzz()  # exits the process at the time limit
    from hypothesis.errors import Flaky

    restarts = 0
    while time.monotonic() < state.deadline:
        try:
            run()  # a batch; the examples database keeps what it found between batches and runs
        except Flaky as exc:  # the generator, not ctlens: every input it made was checked (findings saved by `one`)
            restarts += 1
            print(f"{name}: hypothesis reports inconsistent generation, batch restarted: {exc!s:.200}", file=sys.stderr)
    result = {"engine": engine, **state.stats(started), "generator_restarts": restarts}
    if cov is not None:
        result["line_coverage_percent"] = _coverage_report(cov, modules)
    stats_path.write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> int:
    """Run the readers one after another, each in a child process; print and keep each one's statistics."""
    _paths()
    from fuzz_readers import READERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reader", action="append", choices=sorted(READERS), help="default: every reader")
    parser.add_argument("--seconds", type=float, default=60.0, help="fuzzing time per reader")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("CTLENS_FUZZ_DIR", "/tmp/ctlens-fuzz")))
    parser.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis")
    parser.add_argument("--no-coverage", action="store_true", help="skip coverage.py (faster)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.dir / args.worker, args.seconds, args.engine, not args.no_coverage)
        return 0
    found = 0
    summary = {}
    for name in args.reader or sorted(READERS):
        folder = args.dir / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stats.json").unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--worker", name, "--seconds", str(args.seconds), "--dir", str(args.dir)]
        cmd += ["--engine", args.engine] + (["--no-coverage"] if args.no_coverage else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(FUZZ_TESTS)])}
        try:
            proc = subprocess.run(cmd, env=env, timeout=args.seconds + 300, cwd=ROOT)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        stats = json.loads((folder / "stats.json").read_text()) if (folder / "stats.json").exists() else {}
        current = folder / "current.bin"
        if code != 0:
            if current.exists():  # the input the child was reading when it died or hung
                suffix = current.with_suffix(".suffix").read_text()
                _save_finding(folder / "findings", current.read_bytes(), suffix, f"child process ended: {code}")
            stats["crashed"] = str(code)
        stats["findings_total"] = len(list((folder / "findings").glob("*.txt")))
        found += int(stats.get("findings", 0)) + ("crashed" in stats)
        summary[name] = stats
        print(f"{name}: {json.dumps(stats)}", flush=True)
    (args.dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"findings: {found} (under {args.dir}/<reader>/findings)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
