"""Structure-aware CSV tables for CLIP and CT-RATE: reports / labels / patients CSVs and CT-RATE metadata.

Reports / labels CSV (:mod:`ctlens.data.ct_report`): a header of name, text, finding and patient columns (some
missing, duplicated, renamed), rows with texts, label cells (0/1, NaN, words, huge numbers), short and long rows,
quoting damage, over-long fields, NUL bytes, non-UTF-8. CT-RATE metadata (:mod:`ctlens.io.ct_rate`, read with
a volume: a bundle of the CSV and a small NIfTI): rescale, spacing, orientation and position cells with extreme or
malformed numbers, missing required columns, rows for other volumes.

Example:
    >>> b"VolumeName" in reports_seed()
    True
"""

from __future__ import annotations

import csv
import functools
import io
from typing import Any

from gen_ctz import mutate_bytes
from gen_volume import bundle
from hypothesis import strategies as st

__all__ = ["metadata_bytes", "metadata_seed", "reports_bytes", "reports_seed", "VOLUME"]

VOLUME = "train_1_a_1.nii.gz"
"""The volume name the metadata bundle carries (its NIfTI is read with the metadata row of this name)."""
CELLS = [
    "0",
    "1",
    "",
    "nan",
    "NaN",
    "None",
    "yes",
    "1e309",
    "-1e309",
    "inf",
    "0x10",
    "1_000",
    " 1 ",
    "[1, 2]",
    "[0.7, 0.7]",
    "['1', '0', '0', '0', '1', '0']",
    "[0, 0, 0, 0, 0, 0]",
    "[1e308, 1e308]",
    "[-1, -1]",
    "1e300",
    "-1024",
    "4294967296",
    "99999999999999999999999",
    "1e-320",
    '"',
    "a,b",
    "\x00",
    "é",
]
NAMES = [VOLUME, "train_1_a_1", "train_1", "x", "", "../../etc/passwd", "a" * 300, "nan", "train_1_a_1.nii.gz.nii.gz"]


def _csv_text(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


@functools.cache
def reports_seed() -> bytes:
    """A valid CT-RATE style reports + labels CSV (two volumes of two patients)."""
    return _csv_text(
        [
            ["VolumeName", "Findings_EN", "Impressions_EN", "Emphysema", "Cardiomegaly", "PatientID"],
            ["train_1_a_1.nii.gz", "No effusion.", "Normal.", "0", "1", "p1"],
            ["train_2_a_1.nii.gz", "Emphysema.", "nan", "1", "0", "p2"],
        ]
    )


@functools.cache
def metadata_seed() -> bytes:
    """A valid CT-RATE metadata CSV row for :data:`VOLUME`."""
    return _csv_text(
        [
            [
                "VolumeName",
                "RescaleSlope",
                "RescaleIntercept",
                "XYSpacing",
                "ZSpacing",
                "ImageOrientationPatient",
                "ImagePositionPatient",
                "Manufacturer",
            ],
            [VOLUME, "1", "-1024", "[0.75, 0.75]", "1.5", "[1, 0, 0, 0, 1, 0]", "[-100, -100, 50]", "GE"],
        ]
    )


def _rows(draw: Any, seed: bytes) -> list[list[str]]:
    rows = [list(r) for r in csv.reader(io.StringIO(seed.decode()))]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cell", "cell", "cell", "header", "short", "long", "dup", "drop", "many"]))
        r = draw(st.integers(0, len(rows) - 1))
        if kind == "cell" and rows[r]:
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(st.sampled_from(CELLS + NAMES) | st.text(max_size=10))
        elif kind == "header" and rows[0]:
            c = draw(st.integers(0, len(rows[0]) - 1))
            rows[0][c] = draw(st.sampled_from(["VolumeName", "volume_name", "name", "PatientID", "", "findings_en"]))
        elif kind == "short":
            rows[r] = rows[r][: draw(st.integers(0, len(rows[r])))]
        elif kind == "long":
            rows[r] = rows[r] + draw(st.lists(st.sampled_from(CELLS), min_size=1, max_size=4))
        elif kind == "dup":
            rows.append(list(rows[r]))
        elif kind == "drop" and len(rows) > 1:
            rows.pop(r)
        elif kind == "many":
            rows += [[f"train_{k}_a_1", "x", "y", "1", "0", f"p{k}"] for k in range(draw(st.sampled_from([100, 5000])))]
    return rows


def _finish(draw: Any, text: bytes) -> bytes:
    if draw(st.integers(0, 8)) == 0:
        text += b"big," + b"x" * draw(st.integers(100_000, 200_000)) + b"\n"
    if draw(st.integers(0, 3)) == 0:
        text = mutate_bytes(text, draw)
    return text


@st.composite
def reports_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, ".csv")`` of a crafted reports / labels CSV."""
    return _finish(draw, _csv_text(_rows(draw, reports_seed()))), ".csv"


@functools.cache
def _volume_seed() -> bytes:
    import gzip

    from gen_volume import nifti_seed

    return gzip.compress(nifti_seed("int16", (5, 4, 3)), mtime=0)


def metadata_bundle(csv_bytes: bytes, volume: bytes | None = None) -> bytes:
    """The metadata CSV (read first) and the NIfTI it describes, as one bundle input."""
    return bundle([("metadata.csv", csv_bytes), (VOLUME, volume if volume is not None else _volume_seed())])


@st.composite
def metadata_bytes(draw: Any) -> tuple[bytes, str]:
    """``(bundle, ".bundle")``: a crafted CT-RATE metadata CSV with the volume it describes."""
    return metadata_bundle(_finish(draw, _csv_text(_rows(draw, metadata_seed())))), ".bundle"
