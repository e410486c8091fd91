"""Structure-aware labels files (CSV and JSON): header rows, separators, quoting, class explosions, bad bytes.

CSV: a header row (``study,label``, wide ``study,<class>...``, a missing study column, duplicated names), rows
of label cells (0/1, class names, ``a;b|c`` multilabel cells, quotes, empty cells, extra or missing cells, huge
fields, NUL bytes, non-UTF-8), sometimes a "class explosion" (one study naming thousands of classes and many
studies: a multilabel matrix far larger than the file). JSON: mappings and row lists built from extreme values.

Example:
    >>> b"study" in csv_seed()
    True
"""

from __future__ import annotations

import json
from typing import Any

from gen_ctz import extreme_json, mutate_bytes
from hypothesis import strategies as st

__all__ = ["csv_seed", "labels_bytes"]

CELLS = [
    "0",
    "1",
    "0.0",
    "1.0",
    "true",
    "False",
    "glioma",
    "normal",
    "a;b",
    "a|b|c",
    ";",
    "|",
    "",
    " ",
    '"',
    '""',
    "x\x00y",
    "é",
    "-1",
    "2",
    "1e309",
    "nan",
]


def csv_seed() -> bytes:
    """A small valid binary labels CSV."""
    return b"study,label\ns1,1\ns2,0\ns3,1\n"


@st.composite
def _csv(draw: Any) -> bytes:
    header = draw(
        st.sampled_from(
            [["study", "label"], ["study", "a", "b", "c"], ["name", "label"], ["study"], ["study", "study"], []]
        )
        | st.lists(st.text(max_size=6), max_size=5)
    )
    cell = st.sampled_from(CELLS) | st.text(max_size=8)
    rows = draw(st.lists(st.lists(cell, max_size=6), max_size=12))
    lines = [",".join(header)] + [",".join([f"s{k}", *row]) for k, row in enumerate(rows)]
    if draw(st.integers(0, 5)) == 0:  # a class explosion: many studies x many classes from a small file
        classes, studies = draw(st.integers(100, 5000)), draw(st.integers(100, 5000))
        lines = ["study,label", "s0," + ";".join(f"c{k}" for k in range(classes))]
        lines += [f"t{k},c1" for k in range(studies)]
    if draw(st.integers(0, 8)) == 0:  # a field over the csv module's limit
        lines.append("s_big," + "x" * draw(st.integers(100_000, 200_000)))
    text = "\n".join(lines).encode("utf-8", "surrogatepass")
    return mutate_bytes(text, draw) if draw(st.integers(0, 3)) == 0 else text


@st.composite
def _json(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["mapping", "rows", "any"]))
    value = st.sampled_from([0, 1, "a", ["a", "b"], {"a": 1, "b": 0}, "a;b"]) | extreme_json()
    if kind == "mapping":
        doc: Any = draw(st.dictionaries(st.text(max_size=5), value, max_size=8))
    elif kind == "rows":
        doc = draw(st.lists(st.fixed_dictionaries({"study": st.text(max_size=4), "label": value}) | value, max_size=6))
    else:
        doc = draw(extreme_json())
    text = json.dumps(doc).encode()
    if draw(st.integers(0, 6)) == 0:
        text = b"[" * 50_000 + b"]" * 50_000
    return mutate_bytes(text, draw) if draw(st.integers(0, 3)) == 0 else text


@st.composite
def labels_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, suffix)`` of a crafted labels file (module doc)."""
    if draw(st.booleans()):
        return draw(_csv()), ".csv"
    return draw(_json()), ".json"
