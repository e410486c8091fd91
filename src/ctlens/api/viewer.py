"""What the web viewer needs beside the pixels: its default window, the reader's warnings, 1-based slice numbers.

One study's ``viewer`` block (:func:`viewer_block`) says which window preset opens the study (from the body
region the analysis found: head -> ``brain``, chest -> ``lung``, other CT -> ``soft_tissue``; MR and 2-D images
have none and are shown with automatic contrast), the reader's geometry warnings (tilt corrected, spacing
resampled, series split, files skipped) as de-identified text, the window presets in HU and the legend of the
label overlay. Slices are numbered from 1 everywhere a person reads a number (slider, candidate list):
:func:`number_candidates` adds ``slice_1based`` and ``slice_range_1based`` to each candidate.

Example:
    >>> default_preset("CT", "dicom", {"region": "head"}), default_preset("MR", "nifti", None)
    ('brain', None)
    >>> number_candidates({"candidates": [{"centre_voxel": [13.6, 2, 3], "slice_range": [12, 15]}]})["candidates"][0]
    {'centre_voxel': [13.6, 2, 3], 'slice_range': [12, 15], 'slice_1based': 15, 'slice_range_1based': [13, 16], \
'label': 11}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ctlens.api.overlays import CANDIDATE_BASE, MAX_CANDIDATES, label_legend
from ctlens.api.uploads import IMAGE_KINDS
from ctlens.preprocess.windows import WINDOWS

REGION_PRESETS = {"head": "brain", "chest": "lung"}
"""Body region -> window preset; every other CT region opens in ``soft_tissue``."""
PRESETS = ("brain", "soft_tissue", "lung", "bone", "mediastinum")
SLICE_NUMBERING = "1-based"

_NOT_DICOM = re.compile(r"^skipped (\d+) file\(s\) that are not DICOM\b")
_SKIPPED_ONE = re.compile(r"^skipped .+?: ")
_PATHLIKE = re.compile(r"\S*[/\\]\S*")


def default_preset(modality: str | None, kind: str | None, findings: Mapping[str, Any] | None) -> str | None:
    """The window preset a study opens in: from the analysed body region for CT, None for MR and 2-D images.

    Example:
        >>> [default_preset("CT", "dicom", {"region": r}) for r in ("head", "chest", "abdomen", "unknown")]
        ['brain', 'lung', 'soft_tissue', 'soft_tissue']
        >>> default_preset("CT", "png", {"region": "chest"}) is None
        True
    """
    if modality != "CT" or kind in IMAGE_KINDS:
        return None
    region = (findings or {}).get("region") if isinstance(findings, Mapping) else None
    return REGION_PRESETS.get(str(region or ""), "soft_tissue")


def reader_warnings(warnings: Iterable[Any]) -> list[str]:
    """The reader's warnings without file names or paths (the uploaded names may identify a patient).

    Skipped files are counted, not named; any token that looks like a path is replaced by ``<file>``.

    Example:
        >>> reader_warnings(["skipped a/Doe_Jane.dcm: no pixel data", "skipped b.dcm: no pixel data",
        ...                  "skipped 2 file(s) that are not DICOM: Doe.txt, x.bin", "gantry tilt of 18.50 degrees"])
        ['skipped 2 file(s) that are not DICOM', 'gantry tilt of 18.50 degrees', 'skipped 2 unreadable file(s)']
    """
    out: list[str] = []
    unreadable = 0
    for text in warnings:
        text = str(text)
        match = _NOT_DICOM.match(text)
        if match:
            out.append(f"skipped {match.group(1)} file(s) that are not DICOM")
        elif _SKIPPED_ONE.match(text):
            unreadable += 1
        else:
            out.append(_PATHLIKE.sub("<file>", text))
    if unreadable:
        out.append(f"skipped {unreadable} unreadable file(s)")
    return list(dict.fromkeys(out))


def split_warning(series_uids: list[str], chosen: int, parts: list[str] | None = None) -> str | None:
    """A warning when the analysed block shares its series with other blocks that the reader split off for their
    geometry (orientation, matrix or pixel spacing). Acquisitions, echoes and other labelled ``parts`` are not
    mentioned here: the reader's own warning names them and how to pick one.

    Example:
        >>> split_warning(["a", "a", "b"], 1)
        'the series was split into 2 parts (orientation, matrix or pixel spacing differ); showing part #1'
        >>> split_warning(["a", "b"], 0) is None, split_warning(["a", "a"], 0, ["acq 1", "acq 2"]) is None
        (True, True)
    """
    if not 0 <= chosen < len(series_uids) or (parts and parts[chosen]):
        return None
    blocks = [i for i, uid in enumerate(series_uids) if uid == series_uids[chosen]]
    if len(blocks) < 2:
        return None
    return (
        f"the series was split into {len(blocks)} parts (orientation, matrix or pixel spacing differ); "
        f"showing part #{chosen}"
    )


def number_candidates(findings: dict[str, Any] | None) -> dict[str, Any] | None:
    """``findings`` with 1-based slice numbers and the label value (``10 + k``) on each candidate (a copy).

    ``slice_1based`` is the rounded centre slice plus one, ``slice_range_1based`` the inclusive first and last
    slice plus one; ``label`` is the candidate's value in the label overlay (None past the overlay's limit).
    """
    if not isinstance(findings, dict) or not isinstance(findings.get("candidates"), list):
        return findings
    out = dict(findings)
    numbered = []
    for k, cand in enumerate(findings["candidates"], start=1):
        if not isinstance(cand, dict):
            numbered.append(cand)
            continue
        cand = dict(cand)
        centre = cand.get("centre_voxel")
        if isinstance(centre, list | tuple) and centre:
            cand["slice_1based"] = int(round(float(centre[0]))) + 1
        span = cand.get("slice_range")
        if isinstance(span, list | tuple) and len(span) == 2:
            cand["slice_range_1based"] = [int(span[0]) + 1, int(span[1]) + 1]
        cand["label"] = CANDIDATE_BASE + k if k <= MAX_CANDIDATES else None
        numbered.append(cand)
    out["candidates"] = numbered
    return out


def viewer_block(result: Mapping[str, Any], warnings: Iterable[Any] | None = None) -> dict[str, Any]:
    """The study's ``viewer`` JSON from its stored result (warnings from ``result["reader_warnings"]`` if not given).

    Example:
        >>> v = viewer_block({"modality": "CT", "kind": "dicom", "findings": {"region": "chest"}}, ["tilt"])
        >>> v["default_preset"], v["warnings"], v["slice_numbering"], v["presets"]["lung"]
        ('lung', ['tilt'], '1-based', [1500.0, -600.0])
    """
    findings = result.get("findings") if isinstance(result.get("findings"), Mapping) else None
    if warnings is None:
        warnings = result.get("reader_warnings") or []
    return {
        "default_preset": default_preset(result.get("modality"), result.get("kind"), findings),
        "region": (findings or {}).get("region"),
        "warnings": reader_warnings(warnings),
        "slice_numbering": SLICE_NUMBERING,
        "presets": {name: list(WINDOWS[name]) for name in PRESETS if name in WINDOWS},
        "labels": label_legend(result),
    }
