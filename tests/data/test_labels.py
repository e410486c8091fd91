"""Study labels from CSV and JSON: binary, multiclass, multilabel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ctlens.core.errors import CorruptFileError
from ctlens.data.labels import load_study_labels


def test_binary_csv(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("study,label\na,1\nb,0\nc,1\n")
    lab = load_study_labels(p)
    assert lab.task == "binary" and lab.num_classes == 1
    assert [float(lab[s]) for s in "abc"] == [1.0, 0.0, 1.0]


def test_multiclass_csv_names_and_integers(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("study,label\na,stroke\nb,normal\nc,tumour\nd,normal\n")
    lab = load_study_labels(p)
    assert lab.task == "multiclass" and lab.classes == ["normal", "stroke", "tumour"]
    assert [int(lab[s]) for s in "abcd"] == [1, 0, 2, 0]
    p.write_text("study,label\na,2\nb,10\nc,0\n")
    lab = load_study_labels(p)
    assert lab.classes == ["0", "2", "10"] and int(lab["b"]) == 2


def test_multilabel_wide_csv_and_separated_names(tmp_path: Path) -> None:
    p = tmp_path / "wide.csv"
    p.write_text("study,bleed,fracture,mass\na,1,0,1\nb,0,0,0\n")
    lab = load_study_labels(p)
    assert lab.task == "multilabel" and lab.classes == ["bleed", "fracture", "mass"]
    np.testing.assert_array_equal(lab["a"], [1, 0, 1])
    p2 = tmp_path / "names.csv"
    p2.write_text("study,label\na,bleed;mass\nb,fracture\n")
    lab2 = load_study_labels(p2)
    assert lab2.task == "multilabel"
    np.testing.assert_array_equal(lab2["a"], [1, 0, 1])


def test_json_forms(tmp_path: Path) -> None:
    p = tmp_path / "l.json"
    p.write_text(json.dumps({"a": 1, "b": 0}))
    assert load_study_labels(p).task == "binary"
    p.write_text(json.dumps({"a": {"x": 1, "y": 0}, "b": {"x": 1, "y": 1}}))
    lab = load_study_labels(p)
    assert lab.task == "multilabel" and lab["b"].tolist() == [1.0, 1.0]
    p.write_text(json.dumps([{"study": "a", "label": "x"}, {"study": "b", "label": "y"}]))
    assert load_study_labels(p).task == "multiclass"
    assert load_study_labels({"a": 1, "b": 0}, task="multiclass").classes == ["0", "1"]


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("name,label\na,1\n")
    with pytest.raises(CorruptFileError, match="'study' column"):
        load_study_labels(p)
    with pytest.raises(CorruptFileError, match="0 or 1"):
        load_study_labels({"a": "x"}, task="binary")
    with pytest.raises(CorruptFileError, match="cannot read"):
        load_study_labels(tmp_path / "missing.csv")
