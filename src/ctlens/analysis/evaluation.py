"""The analysis evaluation harness: `analyze` over annotated series, scored against reference lesions.

For each series (``ctlens analyze-eval``): the candidates of :func:`ctlens.analysis.analyze` (the detector never
sees the annotations) are matched to the reference lesions of :mod:`ctlens.analysis.eval_annotations`. A
candidate *hits* a lesion when its centre lies in it (box, mask component or sphere); per lesion the harness
reports the **rank** of the best-ranked hitting candidate (1 = listed first; ``None`` = missed), its score and
the **box IoU** of that candidate (3-D box IoU, and the mean in-plane IoU over the lesion's annotated slices,
0 on slices where the candidate has no box). Candidates that hit no lesion are *false candidates*.

**FROC** (after the LUNA16 protocol, Setio et al., Med Image Anal 2017): all candidates of all scans are pooled
and thresholded at every distinct score; a lesion counts as found when any candidate with a score at or above
the threshold hits it, a candidate that hits no lesion counts as a false positive, and extra candidates on an
already found lesion count as neither. Sensitivity at ``f`` false candidates per scan is the highest
sensitivity whose false-positive rate is at most ``f``; with a detector that caps its candidates the curve
ends early, and the last sensitivity is reported for larger ``f`` (marked ``curve_ends_at``). Scans without
lesions count in the denominator.

**LAA-950 per kernel**: each series' normalised and raw LAA-950, its kernel and filter; series of one study
(and frame of reference) with several kernels give the spread (max - min, percentage points).

**Development data**: series used to develop the analysis are marked and every overall figure is given twice,
for all series and for the held-out ones only. ``DEVELOPMENT_SERIES`` names the data the analysis was tuned on
(Lung_Dx-A0002); more come from ``--dev-series``. A series is a development series when one of the names is
one of its path's parts (or its series name).

Example:
    >>> froc([([0.9, 0.5], [[0], []], 1), ([0.7], [[]], 0)], (0.5, 1.0))["sensitivity"]
    {0.5: 1.0, 1.0: 1.0}
    >>> box_iou((0, 0, 0, 1, 1, 1), (0, 0, 0, 1, 1, 3))
    0.5
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.analysis.eval_annotations import (
    Lesion,
    csv_rows_for_series,
    mask_lesions,
    read_coordinate_csv,
    sphere_lesions,
    voc_index,
    voc_lesions,
)
from ctlens.analysis.findings import Candidate
from ctlens.core.errors import CTLensError, InputNotFoundError

__all__ = [
    "DEVELOPMENT_SERIES",
    "FP_RATES",
    "EvaluationReport",
    "LesionResult",
    "SeriesResult",
    "box_iou",
    "dev_reason",
    "format_report",
    "format_series",
    "format_summary",
    "froc",
    "match",
    "mean_slice_iou",
    "run_evaluation",
    "score_series",
    "series_name",
]

FP_RATES = (1.0, 2.0, 4.0)
"""False candidates per scan at which the FROC sensitivity is reported."""
DEVELOPMENT_SERIES = {
    "Lung_Dx-A0002": "the chest analysis (thresholds, vessel suppression, kernel-aware LAA-950) was developed on it",
}
"""Series (path parts) that were looked at while developing the analysis: their figures flatter it."""

_MASK_SUFFIXES = ("_mask", "-mask", "_seg", "-seg", "_label", "_labels", "_annotation", "_lesions")


def box_iou(a: Sequence[int], b: Sequence[int]) -> float:
    """IoU of two inclusive integer boxes ``(lo..., hi...)`` of any dimension (2-D or 3-D).

    Example:
        >>> box_iou((0, 0, 9, 9), (5, 0, 14, 9))
        0.3333333333333333
    """
    n = len(a) // 2
    inter = float(np.prod([max(0, min(a[n + i], b[n + i]) - max(a[i], b[i]) + 1) for i in range(n)]))
    vol = lambda r: float(np.prod([r[n + i] - r[i] + 1 for i in range(n)]))  # noqa: E731
    return inter / (vol(a) + vol(b) - inter) if inter else 0.0


def mean_slice_iou(candidate: dict[int, Sequence[int]], lesion: dict[int, Sequence[int]]) -> float:
    """Mean in-plane IoU over the lesion's slices (0 on a slice where the candidate has no box).

    Example:
        >>> mean_slice_iou({3: (0, 0, 9, 9)}, {3: (0, 0, 9, 9), 4: (0, 0, 9, 9)})
        0.5
    """
    if not lesion:
        return 0.0
    return float(np.mean([box_iou(candidate[z], b) if z in candidate else 0.0 for z, b in lesion.items()]))


def match(candidates: Sequence[Candidate], lesions: Sequence[Lesion]) -> list[list[int]]:
    """For each candidate (in rank order) the indices of the lesions its centre hits."""
    return [[i for i, les in enumerate(lesions) if les.contains(c.centre_voxel, c.centre_mm)] for c in candidates]


def froc(
    scans: Sequence[tuple[Sequence[float], Sequence[Sequence[int]], int]], fp_rates: Sequence[float] = FP_RATES
) -> dict[str, Any]:
    """FROC of pooled scans ``(scores, hits per candidate, number of lesions)`` (module doc).

    Returns ``sensitivity`` ``{f: value or None}``, the curve points ``(false per scan, sensitivity)``,
    ``curve_ends_at`` (false per scan with every candidate) and the totals.
    """
    n_scans, n_lesions = len(scans), int(sum(s[2] for s in scans))
    pooled = sorted(
        (
            (float(score), k, tuple(hits[i]))
            for k, (scores, hits, _) in enumerate(scans)
            for i, score in enumerate(scores)
        ),
        key=lambda t: -t[0],
    )
    found: set[tuple[int, int]] = set()
    false = 0
    points = [(0.0, 0.0)]
    i = 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j][0] == pooled[i][0]:  # equal scores enter together
            _, k, hits = pooled[j]
            found.update((k, h) for h in hits)
            false += 0 if hits else 1
            j += 1
        points.append((false / max(n_scans, 1), len(found) / n_lesions if n_lesions else float("nan")))
        i = j
    sens: dict[float, float | None] = {}
    for f in fp_rates:
        ok = [s for fp, s in points if fp <= f + 1e-12]
        sens[float(f)] = None if not n_lesions else round(max(ok), 4)
    return {
        "sensitivity": sens,
        "curve": [(round(fp, 4), None if np.isnan(s) else round(s, 4)) for fp, s in points],
        "curve_ends_at": round(points[-1][0], 4),
        "scans": n_scans,
        "lesions": n_lesions,
        "false_candidates": false,
    }


@dataclass
class LesionResult:
    """One reference lesion: best rank (``None``: missed), that candidate's score and box IoUs."""

    name: str
    source: str
    diameter_mm: float
    centre_mm: tuple[float, float, float]
    rank: int | None = None
    score: float | None = None
    iou_3d: float | None = None
    iou_2d_mean: float | None = None


@dataclass
class SeriesResult:
    """One series: its lesions, candidates' scores and hits, false candidates, LAA-950 and development status."""

    name: str
    path: str
    development: str | None = None
    region: str = ""
    lesions: list[LesionResult] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    hits: list[list[int]] = field(default_factory=list)
    kernel: str | None = None
    study: str | None = None
    laa950_percent: float | None = None
    laa950_raw_percent: float | None = None
    laa_filter_sigma_mm: float | None = None
    seconds: float = 0.0
    error: str | None = None

    @property
    def false_candidates(self) -> int:
        """Candidates that hit no lesion."""
        return sum(1 for h in self.hits if not h)


def score_series(result: SeriesResult, candidates: Sequence[Candidate], lesions: Sequence[Lesion]) -> SeriesResult:
    """Fill ``result``'s hits, scores and per-lesion ranks / IoUs from the candidates (rank order) and lesions."""
    result.hits = match(candidates, lesions)
    result.scores = [float(c.score) for c in candidates]
    result.lesions = []
    for i, les in enumerate(lesions):
        rank = next((r for r, h in enumerate(result.hits, start=1) if i in h), None)
        out = LesionResult(les.name, les.source, les.diameter_mm, les.centre_mm, rank)
        if rank is not None:
            c = candidates[rank - 1]
            out.score = round(float(c.score), 4)
            out.iou_3d = round(box_iou(c.bbox, les.box), 3)
            out.iou_2d_mean = round(mean_slice_iou(c.slice_boxes, les.slice_boxes), 3)
        result.lesions.append(out)
    return result


def _summary(results: Sequence[SeriesResult], fp_rates: Sequence[float]) -> dict[str, Any]:
    ok = [r for r in results if r.error is None]
    lesions = [les for r in ok for les in r.lesions]
    ranks = [les.rank for les in lesions if les.rank is not None]
    ious = [les.iou_3d for les in lesions if les.iou_3d is not None]
    ious2 = [les.iou_2d_mean for les in lesions if les.iou_2d_mean is not None]
    curve = froc([(r.scores, r.hits, len(r.lesions)) for r in ok], fp_rates)
    return {
        "series": len(ok),
        "failed": len(results) - len(ok),
        "lesions": len(lesions),
        "found": len(ranks),
        "rank_1": sum(1 for k in ranks if k == 1),
        "median_rank": float(np.median(ranks)) if ranks else None,
        "false_candidates_per_scan": round(float(np.mean([r.false_candidates for r in ok])), 3) if ok else None,
        "mean_iou_3d": round(float(np.mean(ious)), 3) if ious else None,
        "mean_iou_2d": round(float(np.mean(ious2)), 3) if ious2 else None,
        "froc": curve,
    }


def _laa_by_study(results: Sequence[SeriesResult]) -> list[dict[str, Any]]:
    groups: dict[str, list[SeriesResult]] = {}
    for r in results:
        if r.error is None and r.laa950_percent is not None:
            groups.setdefault(r.study or r.name, []).append(r)
    out = []
    for members in groups.values():
        kernels = {r.kernel or "unknown" for r in members}
        if len(members) < 2 or len(kernels) < 2:
            continue
        norm = [r.laa950_percent for r in members]
        raw = [r.laa950_raw_percent for r in members if r.laa950_raw_percent is not None]
        out.append(
            {
                "series": [r.name for r in members],
                "kernels": [r.kernel for r in members],
                "laa950_percent": norm,
                "spread_pp": round(max(norm) - min(norm), 2),
                "raw_spread_pp": round(max(raw) - min(raw), 2) if len(raw) == len(members) else None,
            }
        )
    return out


@dataclass
class EvaluationReport:
    """Per-series results, overall figures for all and for held-out series, LAA-950 agreement between kernels."""

    series: list[SeriesResult]
    fp_rates: tuple[float, ...] = FP_RATES
    development: dict[str, str] = field(default_factory=dict)

    @property
    def overall(self) -> dict[str, Any]:
        """``{"all": ..., "held_out": ...}`` (held out: series not used for development)."""
        held = [r for r in self.series if not r.development]
        return {"all": _summary(self.series, self.fp_rates), "held_out": _summary(held, self.fp_rates)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        series = []
        for r in self.series:
            d = asdict(r)
            d["false_candidates"] = r.false_candidates
            series.append(d)
        return {
            "series": series,
            "overall": self.overall,
            "laa950_kernel_agreement": _laa_by_study(self.series),
            "development_series": self.development,
            "fp_rates": list(self.fp_rates),
        }


def series_name(path: str | Path) -> str:
    """A short name: ``parent/folder`` for a folder, the file name without its image extension for a file.

    Example:
        >>> series_name("/data/Lung_Dx-A0002/series_B40f_8mm/"), series_name("/x/1.2.3.mhd")
        ('Lung_Dx-A0002/series_B40f_8mm', '1.2.3')
    """
    p = Path(path)
    if p.is_dir() or not p.suffix:
        return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
    name = p.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".zip", ".dcm"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return p.stem


def dev_reason(path: str | Path, development: dict[str, str]) -> str | None:
    """Why a series counts as development data (a name in ``development`` is one of its path parts), or None.

    Example:
        >>> dev_reason("/d/Lung_Dx-A0002/series_B40f_8mm", DEVELOPMENT_SERIES)[:20]
        'Lung_Dx-A0002: the c'
    """
    parts = {*Path(path).parts, series_name(path), *series_name(path).split("/")}
    for name, why in development.items():
        if name in parts:
            return f"{name}: {why}"
    return None


def _mask_for(series: Path, masks: Path) -> Path | None:
    if masks.is_file():
        return masks
    want = series_name(series).split("/")[-1]
    for p in sorted(masks.iterdir()):
        stem = series_name(p)
        for suffix in _MASK_SUFFIXES:
            stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
        if p.is_file() and stem == want:
            return p
    return None


def run_evaluation(
    paths: Sequence[str | Path],
    *,
    voc: str | Path | None = None,
    masks: str | Path | None = None,
    coords: str | Path | None = None,
    dev_series: Iterable[str] = (),
    default_development: bool = True,
    fp_rates: Sequence[float] = FP_RATES,
    on_series: Callable[[SeriesResult], None] | None = None,
) -> EvaluationReport:
    """Analyse every series in ``paths`` and score it against its annotations (module doc).

    ``voc``: folder of VOC XML files (searched recursively); ``masks``: a mask file (one series) or a folder of
    masks named like the series (``<name>.nii.gz``, ``<name>_mask.nii.gz``, ...); ``coords``: a LUNA16-style
    CSV. A series that cannot be read is reported with its error and left out of the figures (counted as failed).
    """
    from ctlens.analysis.analyze import analyze, load_for_analysis

    if voc is None and masks is None and coords is None:
        raise InputNotFoundError("no annotations given", hint="pass --voc FOLDER, --masks PATH or --coords CSV")
    if masks is not None and Path(masks).is_file() and len(paths) > 1:
        raise InputNotFoundError("one mask file for several series", path=Path(masks).name, hint="give a folder")
    if masks is not None and not Path(masks).exists():
        raise InputNotFoundError("no such mask file or folder", path=Path(masks).name)
    index = voc_index(voc) if voc is not None else {}
    rows = read_coordinate_csv(coords) if coords is not None else {}
    development = dict(DEVELOPMENT_SERIES) if default_development else {}
    development.update({name: "named with --dev-series" for name in dev_series if name not in development})
    results = []
    for path in paths:
        path = Path(path)
        res = SeriesResult(series_name(path), str(path), dev_reason(path, development))
        t0 = time.perf_counter()
        try:
            volume = load_for_analysis(path)
            lesions: list[Lesion] = []
            if voc is not None:
                lesions += voc_lesions(volume, index)
            if masks is not None:
                mask_path = _mask_for(path, Path(masks))
                if mask_path is not None:
                    from ctlens.io import load

                    lesions += mask_lesions(load(mask_path), volume)
            if coords is not None:
                names = {series_name(path), *series_name(path).split("/")}
                lesions += sphere_lesions(volume, csv_rows_for_series(rows, volume, names))
            findings = analyze(volume)
            score_series(res, findings.candidates, lesions)
            res.region = findings.region
            meta = volume.meta or {}
            res.kernel = meta.get("kernel") or None
            res.study = "/".join(str(meta.get(k, "")) for k in ("study_uid", "frame_of_reference_uid")) or None
            if res.study == "/":
                res.study = None
            m = findings.measurements
            res.laa950_percent, res.laa950_raw_percent = m.get("laa950_percent"), m.get("laa950_raw_percent")
            corr = findings.parameters.get("laa_correction") or {}
            res.laa_filter_sigma_mm = corr.get("filter_sigma_mm") if corr else None
        except CTLensError as exc:
            res.error = exc.reason if exc.path is None else f"{Path(exc.path).name}: {exc.reason}"
        except (OSError, ValueError, MemoryError) as exc:
            res.error = f"{type(exc).__name__}: {exc}"
        res.seconds = round(time.perf_counter() - t0, 2)
        results.append(res)
        if on_series is not None:
            on_series(res)
    used = {name: why for name, why in development.items() if any(dev_reason(r.path, {name: why}) for r in results)}
    return EvaluationReport(results, tuple(float(f) for f in fp_rates), used)


def _f(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def format_series(r: SeriesResult) -> list[str]:
    """Text lines for one series: lesions with rank, score and IoU; false candidates; LAA-950 and kernel."""
    dev = " [DEVELOPMENT]" if r.development else ""
    if r.error:
        return [f"{r.name}{dev}: FAILED: {r.error}"]
    laa = f"LAA-950 {_f(r.laa950_percent)} % (raw {_f(r.laa950_raw_percent)} %, kernel {r.kernel or 'unknown'}"
    laa += f", filter {r.laa_filter_sigma_mm} mm)" if r.laa_filter_sigma_mm else ", no filter)"
    lines = [
        f"{r.name}{dev}: region {r.region}, {len(r.scores)} candidate(s), {r.false_candidates} false, "
        f"{len(r.lesions)} annotated lesion(s); " + (laa if r.laa950_percent is not None else "no LAA-950")
    ]
    for les in r.lesions:
        where = "missed" if les.rank is None else f"rank {les.rank} (score {les.score:.2f})"
        lines.append(
            f"  {les.name} [{les.source}, {les.diameter_mm:.0f} mm]: {where}, box IoU 3-D {_f(les.iou_3d)}, "
            f"in-plane mean {_f(les.iou_2d_mean)}"
        )
    return lines


def format_summary(name: str, s: dict[str, Any]) -> list[str]:
    """Text lines for one overall block (``EvaluationReport.overall["all"]`` or ``["held_out"]``)."""
    if not s["series"]:
        return [f"{name}: no series" + (f" ({s['failed']} failed)" if s["failed"] else "")]
    fr = s["froc"]
    sens = ", ".join(f"{f:g}: {_f(v)}" for f, v in fr["sensitivity"].items())
    return [
        f"{name}: {s['series']} series ({s['failed']} failed), {s['lesions']} lesion(s), found {s['found']}, "
        f"rank 1: {s['rank_1']}, median rank {_f(s['median_rank'], 'g')}",
        f"  FROC sensitivity at false candidates per scan {{{sens}}} (curve ends at {fr['curve_ends_at']:g} per scan)",
        f"  false candidates per scan {_f(s['false_candidates_per_scan'])}, mean box IoU of found lesions "
        f"3-D {_f(s['mean_iou_3d'])}, in-plane {_f(s['mean_iou_2d'])}",
    ]


def format_report(report: EvaluationReport) -> list[str]:
    """The whole report as text lines: series, LAA-950 between kernels, overall (all / held out), development."""
    lines = [line for r in report.series for line in format_series(r)]
    for g in _laa_by_study(report.series):
        pairs = ", ".join(f"{k or 'unknown'} {v:.2f} %" for k, v in zip(g["kernels"], g["laa950_percent"], strict=True))
        lines.append(
            f"LAA-950 between kernels of one acquisition: {pairs}; spread {g['spread_pp']:.2f} pp "
            f"(unfiltered {_f(g['raw_spread_pp'])} pp)"
        )
    overall = report.overall
    lines += format_summary("overall, all series", overall["all"])
    lines += format_summary("overall, held-out series (not used for development)", overall["held_out"])
    for name, why in report.development.items():
        lines.append(f"development data: {name} ({why}); its figures flatter the analysis")
    if overall["held_out"]["series"] == 0 and overall["all"]["series"]:
        lines.append("no held-out series: every figure above is on data the analysis was developed on")
    return lines
