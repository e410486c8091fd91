"""CT volume + report (+ labels) dataset over an HDF5 export, and a patient-wise split.

Inputs:

* the HDF5 file of ``ctlens preprocess-h5`` (:mod:`ctlens.cache.hdf5_export`): one uint8 ``[D, H, W]``
  dataset per volume at the root, values ``round((hu - lo) / (hi - lo) * 255)``;
* a reports CSV (CT-RATE layout: ``VolumeName, ClinicalInformation_EN, Technique_EN, Findings_EN,
  Impressions_EN``): the text is the chosen sections joined; empty cells, ``NaN``/``None`` and missing
  columns count as missing text (a volume without any text is dropped, and counted);
* optionally a labels CSV (CT-RATE multi-abnormality labels: ``VolumeName`` + the 18 findings of
  :data:`CT_RATE_FINDINGS`, 0/1).

Names are matched without file suffix (``train_1_a_1.nii.gz`` == ``train_1_a_1``); an HDF5 name made from a
nested path (``train__train_1__train_1_a_1``) also matches by its last part.

Patients are never guessed. The patient of a CT-RATE name ``train_17_b_2`` is ``train_17``
(:func:`patient_id`, also with a prefix: ``held_train_17_b_2`` -> ``held_train_17``); a name that does not
follow ``<split>_<patient>_<scan>[_<recon>]`` is a :class:`PatientIdError` naming the file, unless the
reports (or labels) CSV has a patient column (``patient_column=``, or a column named ``PatientID``), which
then decides. A silent "one patient per volume" fallback would put re-scans of one patient on both sides
of a split and make the bootstrap resample volumes.

Example:
    >>> patient_id("train_17_b_2.nii.gz"), patient_id("held_train_3_a_1"), volume_key("a/b/valid_3_a_1.nii.gz")
    ('train_17', 'held_train_3', 'valid_3_a_1')
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.data.h5_volumes import H5_ERRORS, stored_volumes, value_to_hu

__all__ = [
    "CT_RATE_FINDINGS",
    "CTReportDataset",
    "PatientIdError",
    "collate_ct_report",
    "patient_id",
    "patient_ids",
    "patient_split",
    "read_labels",
    "read_patients",
    "read_reports",
    "volume_key",
]

log = logging.getLogger(__name__)

CT_RATE_FINDINGS = (
    "Medical material",
    "Arterial wall calcification",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Lymphadenopathy",
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
)
"""The 18 abnormalities labelled in CT-RATE (Hamamci et al. 2024), in the dataset's column order."""

DEFAULT_TEXT_COLUMNS = ("Findings_EN", "Impressions_EN")
_NAME_COLUMNS = ("VolumeName", "volume_name", "name", "AccessionNo")
PATIENT_COLUMN = "PatientID"
"""A reports / labels CSV column of this name gives the patients when no ``patient_column`` is named."""
_CT_RATE_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9-]*(?:_[A-Za-z][A-Za-z0-9-]*)*_\d+)_[A-Za-z]+(?:_\d+)?$")
_MISSING = {"", "nan", "none", "null", "na", "n/a"}
_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".npz", ".npy", ".zip")


def volume_key(name: str) -> str:
    """A volume name without folders and file suffix (``"a/b/x.nii.gz"`` -> ``"x"``)."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


class PatientIdError(CorruptFileError):
    """A volume's patient cannot be told from its name and no patient column was given."""


def patient_id(name: str) -> str:
    """The patient of a CT-RATE name ``[<prefix>_]<split>_<n>_<scan>[_<recon>]`` -> ``[<prefix>_]<split>_<n>``.

    Any other name raises :class:`PatientIdError` (never a silent one-patient-per-volume guess).

    Example:
        >>> patient_id("valid_9_a_2"), patient_id("x/held_train_0_a_1.nii.gz")
        ('valid_9', 'held_train_0')
        >>> patient_id("case-7")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.data.ct_report.PatientIdError: volume name 'case-7' does not name its patient (CT-RATE names are ...)
    """
    key = volume_key(name).rsplit("__", 1)[-1]
    match = _CT_RATE_NAME.match(key)
    if match is None:
        raise PatientIdError(f"volume name {key!r} does not name its patient", hint=_PATIENT_HINT)
    return match.group(1)


_PATIENT_HINT = (
    "CT-RATE names are <split>_<patient>_<scan>_<recon>, e.g. train_17_a_1; or give a patient column, e.g. PatientID"
)


def patient_ids(
    names: Sequence[str], patients: Mapping[str, str] | None = None, *, source: str | os.PathLike[str] | None = None
) -> list[str]:
    """The patient of each name: from ``patients`` (volume key -> patient) when given, else :func:`patient_id`.

    One :class:`PatientIdError` lists how many names fail and the first three; ``source`` names the file.

    Example:
        >>> patient_ids(["train_1_a_1", "scan9"], {"scan9": "p4"})
        ['train_1', 'p4']
        >>> patient_ids(["a", "b"], source="reports.csv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.data.ct_report.PatientIdError: reports.csv: 2 of 2 volume names do not name their patient: 'a', 'b' (...)
    """
    out, bad = [], []
    for name in names:
        key = volume_key(name).rsplit("__", 1)[-1]
        if patients is not None and (volume_key(name) in patients or key in patients):
            out.append(str(patients.get(volume_key(name), patients.get(key))))
            continue
        match = _CT_RATE_NAME.match(key)
        if match is None:
            bad.append(key)
            out.append("")
        else:
            out.append(match.group(1))
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise PatientIdError(
            f"{len(bad)} of {len(names)} volume names do not name their patient: {shown}",
            path=source,
            hint=_PATIENT_HINT,
        )
    return out


def is_missing_text(value: Any) -> bool:
    """True for None, NaN and the usual spellings of "no value" in CSV cells.

    Example:
        >>> [is_missing_text(v) for v in (None, float("nan"), " N/A ", "Normal.")]
        [True, True, True, False]
    """
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in _MISSING


def read_csv_rows(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    """``(columns, rows)`` of a UTF-8 CSV file (BOM tolerated); a clear CTLensError when unreadable.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "r.csv"; _ = f.write_text("a,b\\n1,2\\n")
        >>> read_csv_rows(f)
        (['a', 'b'], [{'a': '1', 'b': '2'}])
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError("CSV file not found", path=p)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CorruptFileError(f"not a readable CSV ({exc})", path=p) from exc
    return columns, rows


def _name_column(columns: Sequence[str], path: str | os.PathLike[str]) -> str:
    for col in _NAME_COLUMNS:
        if col in columns:
            return col
    raise CorruptFileError(f"no volume name column (one of {list(_NAME_COLUMNS)}) in {list(columns)[:8]}", path=path)


def read_reports(path: str | os.PathLike[str], text_columns: Sequence[str] = DEFAULT_TEXT_COLUMNS) -> dict[str, str]:
    """``{volume key: report text}``: the present ``text_columns`` joined by a space; missing cells skipped.

    Columns are matched case-insensitively; ``text_columns`` none of which exists is an error.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
        >>> _ = p.write_text("VolumeName,Findings_EN,Impressions_EN\\na_1_a_1.nii.gz,No effusion.,nan\\n")
        >>> read_reports(p)
        {'a_1_a_1': 'No effusion.'}
    """
    columns, rows = read_csv_rows(path)
    name_col = _name_column(columns, path)
    lower = {c.lower(): c for c in columns}
    chosen = [lower[c.lower()] for c in text_columns if c.lower() in lower]
    if not chosen:
        raise CorruptFileError(f"none of the text columns {list(text_columns)} in {columns}", path=path)
    reports: dict[str, str] = {}
    for row in rows:
        parts = [" ".join(str(row[c]).split()) for c in chosen if not is_missing_text(row.get(c))]
        reports[volume_key(row[name_col])] = " ".join(parts)
    return reports


def read_labels(
    path: str | os.PathLike[str], findings: Sequence[str] | None = None
) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(findings, {volume key: float32 labels})``; ``findings=None`` takes every non-name column.

    Missing cells become NaN (excluded from that finding's metrics).
    """
    columns, rows = read_csv_rows(path)
    name_col = _name_column(columns, path)
    names = [c for c in columns if c != name_col] if findings is None else list(findings)
    absent = [f for f in names if f not in columns]
    if absent:
        raise CorruptFileError(f"label columns missing: {absent}", path=path)
    labels = {}
    for number, row in enumerate(rows, start=1):
        labels[volume_key(row[name_col])] = np.asarray([_label(row, f, number, path) for f in names], np.float32)
    return names, labels


def _label(row: dict[str, Any], finding: str, line: int, path: str | os.PathLike[str]) -> float:
    """One label cell as a number (NaN when missing); a word or an out-of-range number is an error naming the row."""
    cell = row.get(finding)
    if is_missing_text(cell):
        return np.nan
    try:
        value = float(str(cell).strip())
    except ValueError:
        value = np.inf
    if not math.isfinite(value) or abs(value) > float(np.finfo(np.float32).max):
        raise CorruptFileError(f"data row {line}: label {finding!r} is {str(cell)[:40]!r}, not a number", path=path)
    return value


def read_patients(path: str | os.PathLike[str], column: str | None = None) -> dict[str, str] | None:
    """``{volume key: patient}`` from ``column`` of a CSV; ``column=None`` uses a ``PatientID`` column if present.

    Returns None when no column is named and none is present; a named column that is absent, or an empty
    patient cell, is a :class:`PatientIdError` naming the file.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
        >>> _ = f.write_text("VolumeName,PatientID\\nscan_a.nii.gz,P1\\nscan_b,P1\\n")
        >>> read_patients(f)
        {'scan_a': 'P1', 'scan_b': 'P1'}
    """
    columns, rows = read_csv_rows(path)
    if column is None:
        if PATIENT_COLUMN not in columns:
            return None
        column = PATIENT_COLUMN
    if column not in columns:
        raise PatientIdError(f"no patient column {column!r} (columns: {list(columns)[:8]})", path=Path(path).name)
    name_col = _name_column(columns, path)
    out = {}
    for row in rows:
        if is_missing_text(row.get(column)):
            raise PatientIdError(f"volume {row[name_col]!r} has no patient in column {column!r}", path=Path(path).name)
        out[volume_key(row[name_col])] = str(row[column]).strip()
    return out


def patient_split(
    names: Sequence[str],
    target_val_size: int = 500,
    seed: int = 42,
    patients: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """``(train, val)`` volume names, whole patients only, val reaching ``target_val_size`` volumes.

    Patients come from ``patients`` (volume key -> patient, e.g. :attr:`CTReportDataset.patient_map`) or
    the CT-RATE names (:func:`patient_ids`; an unparseable name is an error, never its own patient).
    Patients are shuffled with ``seed`` and moved to validation until it holds at least
    ``target_val_size`` volumes (or every patient but one is used).

    Example:
        >>> names = [f"train_{p}_a_{r}" for p in range(10) for r in (1, 2)]
        >>> train, val = patient_split(names, target_val_size=4, seed=0)
        >>> len(val), {patient_id(n) for n in train} & {patient_id(n) for n in val}
        (4, set())
    """
    ids = patient_ids(names, patients)
    groups: dict[str, list[str]] = defaultdict(list)
    for name, pid in zip(names, ids, strict=True):
        groups[pid].append(name)
    patients_sorted = sorted(groups)
    random.Random(seed).shuffle(patients_sorted)
    val: list[str] = []
    val_patients = set()
    for pid in patients_sorted[:-1] if len(patients_sorted) > 1 else []:
        if len(val) >= target_val_size:
            break
        val.extend(groups[pid])
        val_patients.add(pid)
    train = [n for n, pid in zip(names, ids, strict=True) if pid not in val_patients]
    return train, sorted(val)


class CTReportDataset:
    """``dataset[i]`` -> ``{"volume": uint8 tensor [D, H, W], "text": str, "labels": float tensor | None, "name"}``.

    ``names`` restricts to a subset (e.g. one side of :func:`patient_split`). Volumes without report text
    are dropped (count in :attr:`dropped`), unless ``require_text=False``. The HDF5 file is opened lazily
    in each DataLoader worker. Patients (:attr:`patients`) come from ``patient_column`` of the reports CSV
    (else of the labels CSV), from a ``PatientID`` column, or from CT-RATE names; otherwise asking for them
    is a :class:`PatientIdError` naming the HDF5 file.
    """

    def __init__(
        self,
        h5_path: str | os.PathLike[str],
        reports_csv: str | os.PathLike[str] | None = None,
        labels_csv: str | os.PathLike[str] | None = None,
        names: Sequence[str] | None = None,
        text_columns: Sequence[str] = DEFAULT_TEXT_COLUMNS,
        findings: Sequence[str] | None = None,
        *,
        require_text: bool = True,
        patient_column: str | None = None,
    ) -> None:
        import h5py

        self.h5_path = Path(h5_path)
        if not self.h5_path.is_file():
            raise InputNotFoundError("HDF5 volume file not found", path=self.h5_path, hint="run ctlens preprocess-h5")
        try:
            with h5py.File(self.h5_path, "r") as h5:
                stored = stored_volumes(h5, self.h5_path)
                self.value_to_hu = value_to_hu(h5.attrs.get("value_to_hu", (2000.0 / 255.0, -1000.0)), self.h5_path)
        except H5_ERRORS as exc:
            raise CorruptFileError(f"not a readable HDF5 file ({str(exc)[:200]})", path=self.h5_path) from exc
        reports = read_reports(reports_csv, text_columns) if reports_csv is not None else {}
        self.findings: list[str] = []
        labels: dict[str, np.ndarray] = {}
        if labels_csv is not None:
            self.findings, labels = read_labels(labels_csv, findings)
        self.patient_map: dict[str, str] | None = None
        """volume key -> patient from a patient column (None: patients come from CT-RATE names)."""
        for table in (reports_csv, labels_csv):
            if table is not None and self.patient_map is None:
                try:
                    self.patient_map = read_patients(table, patient_column)
                except PatientIdError:
                    if table is labels_csv or labels_csv is None:
                        raise
        if patient_column is not None and self.patient_map is None:
            raise PatientIdError(f"patient column {patient_column!r} needs a reports or labels CSV", path=h5_path)
        wanted = {volume_key(n) for n in names} if names is not None else None
        self.items: list[tuple[str, str, str, np.ndarray | None]] = []
        self.dropped = 0
        for h5_name in sorted(stored):
            key = self._match(h5_name, reports if reports else labels)
            if wanted is not None and key not in wanted:
                continue
            text = reports.get(key, "")
            if require_text and reports_csv is not None and not text:
                self.dropped += 1
                continue
            self.items.append((h5_name, key, text, labels.get(key)))
        if self.dropped:
            log.warning("CTReportDataset: %d volume(s) without report text dropped", self.dropped)
        self._h5: Any = None

    @staticmethod
    def _match(h5_name: str, table: dict[str, Any]) -> str:
        key = volume_key(h5_name)
        if key in table or not table:
            return key
        last = key.rsplit("__", 1)[-1]
        return last if last in table else key

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        """Volume keys in dataset order."""
        return [key for _, key, _, _ in self.items]

    @property
    def patients(self) -> list[str]:
        """The patient of each volume, in dataset order (class doc); a :class:`PatientIdError` if unknown."""
        return patient_ids(self.names, self.patient_map, source=self.h5_path.name)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import h5py
        import torch

        if self._h5 is None:
            self._h5 = h5py.File(self.h5_path, "r")
        h5_name, key, text, labels = self.items[index]
        try:
            stored = self._h5[h5_name][()]
        except H5_ERRORS as exc:  # damaged chunks, missing filters, links to nowhere
            raise CorruptFileError(f"volume {h5_name!r} is unreadable ({str(exc)[:200]})", path=self.h5_path) from exc
        if stored.dtype != np.uint8:  # not written by the export: saturate instead of wrapping around
            with np.errstate(invalid="ignore", over="ignore"):
                stored = np.clip(np.nan_to_num(stored.astype(np.float64)), 0, 255)
        volume = torch.from_numpy(np.asarray(stored, dtype=np.uint8))
        lab = None
        if labels is not None:
            lab = torch.from_numpy(labels)
        elif self.findings:
            lab = torch.full((len(self.findings),), float("nan"))
        return {"volume": volume, "text": text, "labels": lab, "name": key}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"] = None  # h5py handles do not cross process boundaries
        return state


def collate_ct_report(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack volumes (and labels when every item has them); texts and names as lists.

    Example:
        >>> import torch
        >>> b = collate_ct_report([{"volume": torch.zeros(2, 3, 3, dtype=torch.uint8), "text": "x", "labels": None,
        ...                         "name": "a"}] * 2)
        >>> tuple(b["volume"].shape), b["labels"]
        ((2, 2, 3, 3), None)
    """
    import torch

    labels = [item["labels"] for item in batch]
    return {
        "volume": torch.stack([item["volume"] for item in batch]),
        "text": [item["text"] for item in batch],
        "labels": torch.stack(labels) if all(lab is not None for lab in labels) else None,
        "name": [item["name"] for item in batch],
    }
