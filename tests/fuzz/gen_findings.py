"""Structure-aware findings JSON (:meth:`ctlens.analysis.findings.Findings.to_json`), as the service reads it back.

A seed is the JSON of a small analysis result with candidates, timings and zero-shot scores; a strategy replaces
one top-level or candidate field with an extreme JSON value (wrong types, NaN, huge numbers, deep nesting),
drops fields, replaces the document by a non-object, or damages the text.

Example:
    >>> json.loads(findings_seed())["region"]
    'chest'
"""

from __future__ import annotations

import functools
import json
from typing import Any

from gen_ctz import extreme_json, mutate_bytes
from hypothesis import strategies as st

__all__ = ["findings_bytes", "findings_seed"]

TOP = [
    "region",
    "method",
    "measurements",
    "candidates",
    "warnings",
    "parameters",
    "timings",
    "input_shape",
    "zero_shot",
    "schema_version",
]


@functools.cache
def findings_seed() -> bytes:
    """The JSON of a valid small :class:`~ctlens.analysis.findings.Findings`."""
    from ctlens.analysis.findings import Candidate, Findings

    cand = Candidate(
        kind="nodule", centre_mm=(1.0, 2.0, 3.0), diameter_mm=6.5, score=0.8, slice_boxes={1: (0, 0, 2, 2)}
    )
    f = Findings(
        region="chest",
        method="test",
        measurements={"laa950": 3.2},
        candidates=[cand],
        timings={"total": 0.5},
        input_shape=(4, 8, 8),
        zero_shot={"Emphysema": 0.3},
    )
    return f.to_json().encode()


@st.composite
def findings_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, ".json")`` of a crafted findings document."""
    doc: Any = json.loads(findings_seed())
    kind = draw(st.sampled_from(["top", "top", "candidate", "drop", "document"]))
    if kind == "top":
        doc[draw(st.sampled_from(TOP))] = draw(extreme_json())
    elif kind == "candidate":
        doc["candidates"][0][draw(st.sampled_from(sorted(doc["candidates"][0]) + ["x"]))] = draw(extreme_json())
    elif kind == "drop":
        doc.pop(draw(st.sampled_from(TOP)), None)
    else:
        doc = draw(extreme_json())
    text = json.dumps(doc).encode()
    if draw(st.integers(0, 4)) == 0:
        text = mutate_bytes(text, draw)
    return text, ".json"
