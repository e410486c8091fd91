"""Study-level labels from a CSV or JSON file: binary, multiclass or multilabel.

Accepted shapes (the task is inferred unless ``task=`` says it):

* CSV ``study,label`` with 0/1 values -> **binary**; any other values (names or integers) ->
  **multiclass** (classes sorted); values holding ``;`` or ``|`` separated names -> **multilabel**;
* CSV ``study,<class 1>,<class 2>,...`` with 0/1 in every class column -> **multilabel**;
* JSON ``{"study": 0 | 1}`` (binary), ``{"study": "name"}`` (multiclass), ``{"study": ["a", "b"]}`` or
  ``{"study": {"a": 1, "b": 0}}`` (multilabel); a list of ``{"study": ..., "label": ...}`` rows works too.

Label values: binary -> float32 scalar, multiclass -> int64 class index, multilabel -> float32 ``[C]``.

Example:
    >>> labels = load_study_labels({"s1": "glioma", "s2": "normal", "s3": "glioma"})
    >>> labels.task, labels.classes, int(labels["s2"])
    ('multiclass', ['glioma', 'normal'], 1)
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ctlens.core.errors import CorruptFileError

__all__ = ["StudyLabels", "load_study_labels"]

Task = Literal["binary", "multiclass", "multilabel"]
_SEPARATORS = (";", "|")
SMALL_LABELS_BYTES = 64 * 1024**2
"""Memory the multilabel vectors of a labels file may take whatever its size (then 100x the file size)."""


@dataclass
class StudyLabels:
    """Labels per study name (see the module doc for the value types).

    Example:
        >>> lab = load_study_labels({"a": ["bleed"], "b": ["bleed", "fracture"], "c": []})
        >>> lab.task, lab.classes, lab["b"].tolist(), "d" in lab
        ('multilabel', ['bleed', 'fracture'], [1.0, 1.0], False)
    """

    task: Task
    classes: list[str]
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, study: str) -> np.ndarray:
        return self.values[study]

    def __contains__(self, study: object) -> bool:
        return study in self.values

    def __len__(self) -> int:
        return len(self.values)

    @property
    def num_classes(self) -> int:
        """1 for binary, else the number of classes."""
        return 1 if self.task == "binary" else len(self.classes)


def _is_binary(values: list[Any]) -> bool:
    return all(str(v).strip() in ("0", "1", "0.0", "1.0", "True", "False", "true", "false") for v in values)


def _as01(value: Any) -> float:
    return 1.0 if str(value).strip().lower() in ("1", "1.0", "true") else 0.0


def _split(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, Mapping):
        return [str(k) for k, v in value.items() if _as01(v)]
    text = str(value)
    for sep in _SEPARATORS:
        text = text.replace(sep, _SEPARATORS[0])
    return [t.strip() for t in text.split(_SEPARATORS[0]) if t.strip()]


def _from_mapping(
    raw: Mapping[str, Any],
    task: Task | None,
    where: str,
    classes: list[str] | None = None,
    budget: int | None = None,
) -> StudyLabels:
    items = {str(k): v for k, v in raw.items()}
    values = list(items.values())
    if task is None:
        if any(isinstance(v, list | tuple | Mapping) for v in values) or any(
            isinstance(v, str) and any(s in v for s in _SEPARATORS) for v in values
        ):
            task = "multilabel"
        elif _is_binary(values):
            task = "binary"
        else:
            task = "multiclass"
    if task == "binary":
        if not _is_binary(values):
            raise CorruptFileError("binary labels must be 0 or 1", path=where, hint="or pass task='multiclass'")
        return StudyLabels("binary", ["positive"], {k: np.float32(_as01(v)) for k, v in items.items()})
    if task == "multiclass":
        classes = sorted({str(v).strip() for v in values}, key=lambda c: (not c.lstrip("-").isdigit(), c.zfill(12)))
        index = {c: i for i, c in enumerate(classes)}
        return StudyLabels("multiclass", classes, {k: np.int64(index[str(v).strip()]) for k, v in items.items()})
    names = {k: _split(v) for k, v in items.items()}
    if classes is None:
        declared = {str(c) for v in values if isinstance(v, Mapping) for c in v}
        classes = sorted({c for v in names.values() for c in v} | declared)
    need = len(names) * len(classes) * 4
    if budget is not None and need > budget:
        raise CorruptFileError(
            f"{len(names)} studies x {len(classes)} classes would take {need} bytes of labels, over {budget}",
            path=where,
            hint="a multilabel file names each class in a column or in the label cells; check the separators",
        )
    position = {c: i for i, c in enumerate(classes)}
    out = {}
    for k, v in names.items():
        vec = np.zeros(len(classes), np.float32)
        try:
            vec[[position[c] for c in v]] = 1.0
        except KeyError as exc:
            raise CorruptFileError(f"study {k!r} names class {exc.args[0]!r}, not a column", path=where) from None
        out[k] = vec
    return StudyLabels("multilabel", classes, out)


def _budget(path: Path) -> int:
    from ctlens.core.settings import get_settings

    return max(SMALL_LABELS_BYTES, int(get_settings().max_archive_ratio * path.stat().st_size))


def _from_csv(path: Path, task: Task | None, study_column: str) -> StudyLabels:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or study_column not in rows[0]:
        raise CorruptFileError(f"a CSV with a {study_column!r} column and a header row is needed", path=path)
    columns = [c for c in rows[0] if c != study_column]
    if None in rows[0] or any(None in r.values() for r in rows):
        raise CorruptFileError("a row has more or fewer cells than the header row", path=path)
    if len(columns) == 1:
        return _from_mapping({r[study_column]: r[columns[0]] for r in rows}, task, str(path), budget=_budget(path))
    if not _is_binary([r[c] for r in rows for c in columns]):
        raise CorruptFileError("several label columns must hold 0/1 (one column per class)", path=path)
    wide = {r[study_column]: {c: r[c] for c in columns} for r in rows}
    return _from_mapping(wide, task or "multilabel", str(path), classes=columns, budget=_budget(path))


def load_study_labels(
    source: str | os.PathLike[str] | Mapping[str, Any] | StudyLabels,
    task: Task | None = None,
    study_column: str = "study",
) -> StudyLabels:
    """Labels from a CSV / JSON file or a mapping (module doc); a :class:`StudyLabels` is returned as is.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
        >>> _ = p.write_text("study,label\\ns1,1\\ns2,0\\n")
        >>> lab = load_study_labels(p); lab.task, float(lab["s1"])
        ('binary', 1.0)
    """
    if isinstance(source, StudyLabels):
        return source
    if isinstance(source, Mapping):
        return _from_mapping(source, task, "labels")
    path = Path(source)
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text())
            if isinstance(doc, list):
                doc = {str(r[study_column]): r["label"] for r in doc}
            if not isinstance(doc, Mapping):
                raise ValueError(f"a JSON {type(doc).__name__}, not an object or a list of rows")
            return _from_mapping(doc, task, str(path), budget=_budget(path))
        return _from_csv(path, task, study_column)
    except OSError as exc:
        raise CorruptFileError(f"cannot read the labels ({exc.strerror or exc})", path=path) from exc
    except (ValueError, KeyError, TypeError, csv.Error) as exc:  # bad UTF-8, JSON, CSV; rows of the wrong shape
        raise CorruptFileError(f"not a labels file ({str(exc)[:200]})", path=path) from None
    except RecursionError:
        raise CorruptFileError("not a labels file (JSON nested too deeply)", path=path) from None
