"""``python -m ctlens.compat.ctclip.split_validation``: seed 003's patient-wise validation / test split of
CT-RATE's validation files, over :func:`ctlens.data.ct_report.patient_split`.

``--data_dir`` holds ``validation_metadata.csv``, ``validation_reports.csv`` and ``valid_predicted_labels.csv``
(any that exist). The first run keeps them as ``original_validation_*.csv`` / ``original_valid_*.csv``; every run
reads those originals, puts whole patients into validation until ``--target_val_size`` volumes, the rest into
test, and writes ``validation_*`` / ``valid_*`` and ``test_*`` files plus ``split_summary.json``. Same seed, same
split; no patient is on both sides.

Example:
    >>> parser().parse_args(["--data_dir", "d"]).target_val_size
    500
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from ctlens.compat.ctclip.args import run_script

__all__ = ["FILES", "main", "parser"]

FILES = (
    ("validation_metadata.csv", "test_metadata.csv"),
    ("validation_reports.csv", "test_reports.csv"),
    ("valid_predicted_labels.csv", "test_predicted_labels.csv"),
)
"""(validation file, test file) pairs of CT-RATE's layout."""


def parser() -> argparse.ArgumentParser:
    """The seed's flags."""
    p = argparse.ArgumentParser(prog="split_validation.py", description="Patient-wise validation/test split")
    p.add_argument("--data_dir", required=True, type=Path)
    p.add_argument("--target_val_size", type=int, default=500)
    p.add_argument("--seed", type=int, default=42)
    return p


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    from ctlens.data.ct_report import read_csv_rows

    return read_csv_rows(path)


def _write(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    from ctlens.io.files import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _main(argv: Sequence[str] | None) -> int:
    from ctlens.core.errors import InputNotFoundError
    from ctlens.data.ct_report import patient_id, patient_split, volume_key

    a = parser().parse_args(argv)
    present = [(v, t) for v, t in FILES if (a.data_dir / v).is_file() or (a.data_dir / f"original_{v}").is_file()]
    if not present:
        raise InputNotFoundError(
            f"none of {', '.join(v for v, _ in FILES)} found", path=a.data_dir, hint="pass CT-RATE's data folder"
        )
    tables = {}
    for val_name, _ in present:
        original = a.data_dir / f"original_{val_name}"
        if not original.is_file():
            shutil.copy2(a.data_dir / val_name, original)
        tables[val_name] = _rows(original)
    first_columns, first_rows = tables[present[0][0]]
    name_column = next(c for c in ("VolumeName", "volume_name", "name") if c in first_columns)
    names = sorted({volume_key(r[name_column]) for r in first_rows})
    _, val = patient_split(names, a.target_val_size, a.seed)
    val_set = set(val)
    summary: dict[str, object] = {"seed": a.seed, "target_val_size": a.target_val_size}
    for val_name, test_name in present:
        columns, rows = tables[val_name]
        col = next(c for c in ("VolumeName", "volume_name", "name") if c in columns)
        keep = [r for r in rows if volume_key(r[col]) in val_set]
        rest = [r for r in rows if volume_key(r[col]) not in val_set]
        _write(a.data_dir / val_name, columns, keep)
        _write(a.data_dir / test_name, columns, rest)
    test = [n for n in names if n not in val_set]
    summary.update(
        validation_volumes=len(val),
        validation_patients=len({patient_id(n) for n in val}),
        test_volumes=len(test),
        test_patients=len({patient_id(n) for n in test}),
        files=[f for pair in present for f in pair],
    )
    (a.data_dir / "split_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; 0 when the split was written."""
    return run_script(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
