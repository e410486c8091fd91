"""Zero-shot prompts are never training-report sentences (issue 22 point 7), checked by code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctlens.models.clip3d.prompts import DEFAULT_PROMPTS, PROMPT_ENSEMBLE, prompt_leaks
from ctlens.training.clip import synthetic
from ctlens.training.clip.synthetic import SYNTHETIC_FINDINGS, synthetic_report
from ctlens.training.clip.synthetic_spatial import SPATIAL_FINDINGS, spatial_report

OLD_ENSEMBLE = (  # the ensemble before issue 22: three of its pairs are the synthetic report templates
    ("{finding} is present.", "{finding} is not present."),
    ("There is {finding}.", "There is no {finding}."),
    ("{finding} is seen.", "No {finding} is seen."),
    ("Findings consistent with {finding}.", "No evidence of {finding}."),
)


def _every_template_sentence() -> list[str]:
    """Every sentence the planted benchmark's report generator can write (all templates x phrases)."""
    out = []
    for phrases in synthetic._PHRASES.values():
        for template, phrase in itertools.product(synthetic._POSITIVE + synthetic._NEGATIVE, phrases):
            out.append(synthetic._cap(template.format(x=phrase)))
    return out + list(synthetic._NEUTRAL)


def _generated_reports(n: int = 300) -> list[str]:
    rng = np.random.default_rng(5)
    reports = []
    for _ in range(n):
        labels = (rng.random(5) < 0.5).astype(int)
        reports += list(synthetic_report(labels, rng)) + list(spatial_report(labels, rng))
    return reports


@pytest.mark.parametrize("templates", [DEFAULT_PROMPTS, PROMPT_ENSEMBLE])
def test_shipped_prompts_never_occur_in_either_benchmarks_reports(templates):
    findings = list(SYNTHETIC_FINDINGS) + list(SPATIAL_FINDINGS)
    assert prompt_leaks(templates, findings, _every_template_sentence()) == []
    assert prompt_leaks(templates, findings, _generated_reports()) == []


def test_the_old_ensemble_is_caught():
    leaks = prompt_leaks(OLD_ENSEMBLE, list(SYNTHETIC_FINDINGS), _every_template_sentence())
    leaked = {leak["prompt"] for leak in leaks}
    assert {"There is {finding}.", "There is no {finding}.", "No evidence of {finding}."} <= leaked
    assert "{finding} is present." not in leaked


def test_leaks_by_text_and_by_frame_ignore_case_and_spacing():
    exact = prompt_leaks(DEFAULT_PROMPTS, ["Emphysema"], ["Lungs: EMPHYSEMA   is  present. Heart normal."])
    assert [(x["prompt"], x["kind"], x["reports"]) for x in exact] == [("{finding} is present.", "prompt text", 1)]
    framed = prompt_leaks(DEFAULT_PROMPTS, ["Emphysema"], ["Mild bronchiectasis is not present.", "x", ""])
    assert [(x["prompt"], x["kind"]) for x in framed] == [("{finding} is not present.", "template frame")]
    assert prompt_leaks(DEFAULT_PROMPTS, ["Emphysema"], ["Emphysema is present in the left upper lobe."])
    assert prompt_leaks(DEFAULT_PROMPTS, ["Emphysema"], []) == []
