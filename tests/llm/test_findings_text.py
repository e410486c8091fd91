"""Findings in words: the payload's lines and the chat summary, from typed findings and from their stored JSON."""

from __future__ import annotations

from ctlens.analysis.findings import Candidate, Findings
from ctlens.llm.chat_context import findings_context
from ctlens.llm.findings_text import (
    MAX_SUMMARY_CHARS,
    candidate_box,
    findings_summary,
    payload_findings_lines,
    zero_shot_line,
)


def _findings() -> Findings:
    mass = Candidate(
        centre_voxel=(16.0, 297.0, 170.0),
        diameter_mm=46.2,
        volume_ml=31.4,
        mean_hu=-12.0,
        slice_range=(12, 20),
        bbox=(12, 250, 105, 20, 344, 234),
        side="right",
        score=0.93,
        kind="mass",
    )
    nodule = Candidate(diameter_mm=7.6, volume_ml=0.2, mean_hu=-310.0, slice_range=(30, 31), score=0.41)
    return Findings(
        region="chest",
        method="lungs: threshold + airway tracing",
        measurements={"lung_volume_ml": 4212.5, "laa950_percent": 5.712, "lobes": {"upper": 1.0}, "ok": True},
        candidates=[mass, nodule],
        warnings=["slices 3-4 missing"],
        parameters={"threshold": -500},
    )


def test_the_stored_json_reads_back_to_the_same_words() -> None:
    found = _findings()
    stored = Findings.from_json(found.to_json())
    assert findings_summary(stored) == findings_summary(found)
    assert payload_findings_lines(stored) == payload_findings_lines(found)


def test_chat_summary() -> None:
    assert findings_summary(_findings()).splitlines() == [
        "Region: chest",
        "Method: lungs: threshold + airway tracing",
        "Measurements: lung_volume_ml=4212, laa950_percent=5.712, ok=True",
        "Candidates (2, best first):",
        "  1. mass 46 mm, right side, slices 13-21, mean -12 HU, volume 31.4 mL, score 0.93",
        "  2. region 8 mm, slices 31-32, mean -310 HU, volume 0.2 mL, score 0.41",
        "Warnings: slices 3-4 missing",
    ]
    many = Findings(candidates=[Candidate(diameter_mm=5.0)] * 400, warnings=["w " * 300])
    summary = findings_summary(many)
    assert len(summary) <= MAX_SUMMARY_CHARS and summary.count("region 5 mm") == 8 and "…" in summary


def test_payload_lines() -> None:
    assert payload_findings_lines(_findings()) == [
        "chest measurements: lung_volume_ml 4.21e+03, laa950_percent 5.71",
        "right mass, 46 mm, mean -12 HU (score 0.93) at slices 13-21, rows 250-344, columns 105-234",
        "finding, 8 mm, mean -310 HU (score 0.41) at slices 1-1, rows 0-0, columns 0-0",
    ]
    assert payload_findings_lines(Findings()) == []
    assert candidate_box(_findings().candidates[0]) == (12, 21, 250, 345, 105, 235)


def test_zero_shot_scores_are_labelled_model_output() -> None:
    line = zero_shot_line({"Emphysema": 0.81, "Cardiomegaly": 0.2, "Nodule": 0.5}, "ct-clip", top=2)
    label = "Zero-shot CLIP scores (ct-clip; model output, not a diagnosis)"
    assert line == f"{label}, highest 2 of 3: Emphysema 0.81, Nodule 0.50"
    assert zero_shot_line(None) == zero_shot_line({}) == ""
    with_scores = Findings(region="chest", zero_shot={"Emphysema": 0.7})
    assert findings_summary(with_scores).splitlines()[-2:] == [
        "Zero shot: Emphysema=0.7",
        "Zero shot note: model scores (3D CLIP zero-shot), not diagnoses",
    ]
    assert findings_context(None, {"Emphysema": 0.7}).startswith("Zero-shot CLIP scores (CLIP;")
