"""The evaluation protocol's guards: what a checkpoint was trained and validated on, and split disjointness.

A CLIP evaluation may only report numbers on patients the model never saw. :func:`training_record` finds
the training and validation volume names of a checkpoint folder, in this order:

1. ``training_split.json`` (``{"train": [...], "val": [...]}``) in the checkpoint folder or its run folder;
2. ``train_config.json`` of the run folder (``ctlens clip train`` writes it): the ``split`` JSON it names,
   or the same :func:`~ctlens.data.ct_report.patient_split` of its ``ct`` / ``reports`` / ``labels`` files
   with its ``val_size`` and ``seed`` that training made.

:func:`check_disjoint` then refuses (``SplitOverlapError``) a test set that shares a patient with the
training or the validation volumes, and a threshold-validation set that shares one with training or test.
Patients are compared when every name (or a patient map) gives one, else volume names.

Example:
    >>> check_disjoint(test=["train_1_a_1"], val=["train_2_a_1"], train=["train_3_a_1", "train_3_a_2"])
    {'level': 'patient', 'test': 1, 'val': 1, 'train': 2}
    >>> check_disjoint(test=["train_1_a_1"], val=["train_1_a_2"])
    Traceback (most recent call last):
    ...
    ctlens.training.clip.protocol.SplitOverlapError: test and validation share 1 patient(s): train_1
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ctlens.core.errors import CTLensError
from ctlens.data.ct_report import PatientIdError, patient_ids, volume_key

__all__ = ["SPLIT_FILE", "SplitOverlapError", "TrainingRecord", "check_disjoint", "training_record"]

SPLIT_FILE = "training_split.json"
"""Where a run records the volume names it trained and validated on (``{"train": [...], "val": [...]}``)."""


class SplitOverlapError(CTLensError):
    """Evaluation data overlaps the data a model was trained, validated or thresholded on."""


@dataclass
class TrainingRecord:
    """The volumes a checkpoint was trained (``train``) and validated (``val``) on, and where that came from."""

    train: list[str]
    val: list[str]
    source: str
    reports: str | None = None


def training_record(checkpoint: str | os.PathLike[str]) -> TrainingRecord | None:
    """The recorded training / validation names of a checkpoint folder (module doc); None if none recorded.

    Example:
        >>> import tempfile
        >>> training_record(tempfile.mkdtemp()) is None
        True
    """
    folder = Path(checkpoint)
    if folder.is_file():
        folder = folder.parent
    for candidate in (folder, folder.parent):
        split_file = candidate / SPLIT_FILE
        if split_file.is_file():
            names = _read_split(split_file)
            reports = _config(candidate).get("reports")
            return TrainingRecord(list(names["train"]), list(names.get("val", [])), split_file.name, reports)
    for candidate in (folder, folder.parent):
        cfg = _config(candidate)
        if not cfg:
            continue
        if cfg.get("split"):
            names = _read_split(Path(cfg["split"]))
            return TrainingRecord(list(names["train"]), list(names.get("val", [])), "train_config.json split", None)
        if cfg.get("ct") and Path(cfg["ct"]).is_file():
            from ctlens.data.ct_report import CTReportDataset, patient_split

            full = CTReportDataset(cfg["ct"], cfg.get("reports"), cfg.get("labels"))
            train, val = patient_split(full.names, int(cfg.get("val_size", 500)), int(cfg.get("seed", 42)))
            return TrainingRecord(train, val, "train_config.json (split recomputed)", cfg.get("reports"))
    return None


def _config(folder: Path) -> dict:
    path = folder / "train_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_split(path: Path) -> dict:
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CTLensError(f"unreadable split record ({exc})", path=path.name) from exc
    if not isinstance(names, dict) or not isinstance(names.get("train"), list):
        raise CTLensError("split record has no 'train' list", path=path.name)
    return names


def _ids(names: Sequence[str], patients: Mapping[str, str] | None) -> list[str] | None:
    try:
        return patient_ids(names, patients)
    except PatientIdError:
        return None


def check_disjoint(
    *,
    test: Sequence[str],
    val: Sequence[str] = (),
    train: Sequence[str] = (),
    train_val: Sequence[str] = (),
    patients: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Refuse overlapping evaluation data (module doc); returns what was compared.

    ``test`` / ``val``: the evaluation's test and threshold-validation volumes; ``train`` / ``train_val``:
    the checkpoint's recorded training and training-validation volumes. The threshold-validation set may
    be the training-validation set (it only picks thresholds) but must not share a patient with training or
    test; test must share none with any of them.
    """
    groups = {"test": list(test), "val": list(val), "train": list(train), "train_val": list(train_val)}
    every = [n for names in groups.values() for n in names]
    ids = _ids(every, patients)
    level = "patient" if ids is not None else "volume"
    keyed: dict[str, set[str]] = {}
    at = 0
    for group, names in groups.items():
        keys = ids[at : at + len(names)] if ids is not None else [volume_key(n) for n in names]
        keyed[group] = set(keys)
        at += len(names)
    pairs = (
        ("test", "val", "test and validation"),
        ("test", "train", "test and the checkpoint's training volumes"),
        ("test", "train_val", "test and the checkpoint's validation volumes"),
        ("val", "train", "validation (thresholds) and the checkpoint's training volumes"),
    )
    for a, b, what in pairs:
        shared = sorted(keyed[a] & keyed[b])
        if shared:
            shown = ", ".join(shared[:3]) + (", ..." if len(shared) > 3 else "")
            raise SplitOverlapError(
                f"{what} share {len(shared)} {level}(s): {shown}",
                hint=None if level == "patient" else "volume names do not name patients; give a patient column",
            )
    return {"level": level, **{k: len(v) for k, v in groups.items() if v}}
