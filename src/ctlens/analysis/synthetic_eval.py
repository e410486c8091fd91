"""Held-out synthetic evaluation of the analysis: fresh phantoms from seeds never used while developing it.

``ctlens analyze-eval --synthetic N --seed S`` draws ``N`` chest and ``N`` head cases from
``numpy.random.default_rng(S)`` (:func:`draw_chest_case`, :func:`draw_head_case`), builds them with
:func:`ctlens.analysis.phantoms.chest_case_phantom` / :func:`~ctlens.analysis.phantoms.head_case_phantom`,
stores each in a random axial storage order (:func:`ctlens.preprocess.orientation.reorient`) and runs
:func:`ctlens.analysis.analyze` on it. The detector sees only the volume; the truth masks go to the scoring.

Chest cases: field of view 150-200 x 190-230 x 240-290 mm, slice thickness 1-8 mm, in-plane 0.9-1.5 mm, lung
-870..-820 HU, one nodule (radius 3-12 mm, either lung, anywhere within 0.55 of the lung's semi-axes) in 3 of 4
cases, a vessel tree in either lung or none, an emphysema sphere (0-35 mm) and every case in two noise versions
of the same geometry: *soft* (8-20 HU, smoothed 0.8-1.2 mm, kernel B30f) and *sharp* (35-70 HU white, kernel
B70f). Scored: the nodule rank and FROC at 1/2/4 false candidates per scan
(:func:`ctlens.analysis.evaluation.froc`, on the soft and the sharp versions separately), the false candidates
of scans with and without a vessel tree, and the LAA-950 agreement between the two versions (and with the truth).

Head cases: slice thickness 1-5 mm, in-plane 0.8-1.5 mm, noise 3-8 HU; a bleed in half the cases (radius
2-12 mm, 52-85 HU, anywhere within 0.6 of the brain's semi-axes), so some are below what the score
``(1 - exp(-V / 0.5 mL)) * clip((HU - 45) / 25, 0, 1) >= 0.5`` can report. Scored: sensitivity (a reported
candidate's centre in the bleed) and specificity (no reported candidate) of the 0.5 report threshold with
Wilson 95 % intervals, also split into bleeds whose truth volume and HU score >= 0.5 and those below.

**Seed rule.** Seeds below ``HELD_OUT_MIN_SEED`` (10000) are development seeds: the phantoms of the tests and
docs use seeds 0-9, and any tuning must stay below 10000. A held-out run needs ``S >= 10000`` and a seed not
listed in ``REPORTED_SEEDS`` (a seed whose figures were published is no longer fresh for the next change);
:func:`check_seed` refuses others. Failures (an exception in ``analyze``) are counted as misses, never dropped.

Example:
    >>> check_seed(42)
    Traceback (most recent call last):
    ...
    ctlens.core.errors.CTLensError: seed 42 is a development seed (seeds below 10000 are used for development \
and tests) (held-out runs need a fresh seed >= 10000)
    >>> round(wilson(18, 20)[0], 3), round(wilson(18, 20)[1], 3)
    (0.699, 0.972)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ctlens.analysis.eval_annotations import mask_lesions
from ctlens.analysis.evaluation import FP_RATES, SeriesResult, froc, score_series
from ctlens.analysis.phantoms import chest_case_phantom, head_case_phantom
from ctlens.core.errors import CTLensError

__all__ = [
    "HELD_OUT_MIN_SEED",
    "REPORTED_SEEDS",
    "STORAGE_ORDERS",
    "check_seed",
    "draw_chest_case",
    "draw_head_case",
    "format_synthetic",
    "run_synthetic",
    "wilson",
]

HELD_OUT_MIN_SEED = 10000
"""Seeds below this are development seeds (tests, docs, tuning)."""
REPORTED_SEEDS: dict[int, str] = {
    52817: "docs/analysis.md, held-out synthetic run 1 (N = 30)",
    61409: "docs/analysis.md, held-out synthetic run 2 (N = 30)",
    73019: "docs/analysis.md, held-out synthetic run 3 (N = 30), small-nodule rule before / after",
}
"""Seeds whose held-out figures were published (docs/analysis.md): refused for a new held-out run."""
STORAGE_ORDERS = ("LPS", "RPS", "LAS", "RAS", "PLS", "ARS", "LPI", "RAI")
"""Axial storage orders the cases are written in (array axis 0 along S or I, rows / columns any order)."""
_SHARP = ("B70f", (35.0, 70.0), 0.0)
_SOFT = ("B30f", (8.0, 20.0), 1.0)


def check_seed(seed: int) -> None:
    """Refuse development seeds (< ``HELD_OUT_MIN_SEED``) and seeds already reported (module doc)."""
    if seed < HELD_OUT_MIN_SEED:
        raise CTLensError(
            f"seed {seed} is a development seed (seeds below {HELD_OUT_MIN_SEED} are used for development and tests)",
            hint=f"held-out runs need a fresh seed >= {HELD_OUT_MIN_SEED}",
        )
    if seed in REPORTED_SEEDS:
        raise CTLensError(f"seed {seed} was already reported ({REPORTED_SEEDS[seed]})", hint="pick a fresh seed")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials (Wilson, JASA 1927); (nan, nan) for n = 0.

    Example:
        >>> wilson(0, 10)[0], round(wilson(0, 10)[1], 3)
        (0.0, 0.278)
    """
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def draw_chest_case(rng: np.random.Generator) -> dict[str, Any]:
    """Parameters of one chest case (module doc), drawn from ``rng``."""
    fov = (rng.uniform(150, 200), rng.uniform(190, 230), rng.uniform(240, 290))
    px = rng.uniform(0.9, 1.5)
    spacing = (float(rng.choice([1.0, 1.25, 2.0, 2.5, 3.0, 5.0, 8.0])), px, px)
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * rng.uniform(0.0, 0.55)
    return {
        "fov_mm": tuple(round(float(f), 1) for f in fov),
        "spacing": tuple(round(float(s), 3) for s in spacing),
        "lung_hu": round(float(rng.uniform(-870, -820)), 1),
        "nodule_radius_mm": round(float(rng.uniform(3, 12)), 2) if rng.random() < 0.75 else 0.0,
        "nodule_side": str(rng.choice(["left", "right"])),
        "nodule_offset": tuple(round(float(o), 3) for o in offset),
        "vessel_side": [None, "left", "right"][int(rng.integers(3))],
        "emphysema_radius_mm": round(float(rng.uniform(0, 35)), 1),
        "emphysema_side": str(rng.choice(["left", "right"])),
        "noise": {"soft": round(float(rng.uniform(*_SOFT[1])), 1), "sharp": round(float(rng.uniform(*_SHARP[1])), 1)},
        "soft_sigma_mm": round(float(rng.uniform(0.8, 1.2)), 2),
        "order": str(rng.choice(STORAGE_ORDERS)),
        "noise_seed": int(rng.integers(2**31)),
    }


def draw_head_case(rng: np.random.Generator, bleed: bool) -> dict[str, Any]:
    """Parameters of one head case, with or without a bleed (module doc), drawn from ``rng``."""
    px = rng.uniform(0.8, 1.5)
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * rng.uniform(0.0, 0.6)
    return {
        "spacing": (float(rng.choice([1.0, 2.0, 2.5, 3.0, 5.0])), round(float(px), 3), round(float(px), 3)),
        "bleed_radius_mm": round(float(rng.uniform(2, 12)), 2) if bleed else 0.0,
        "bleed_hu": round(float(rng.uniform(52, 85)), 1),
        "bleed_offset": tuple(round(float(o), 3) for o in offset),
        "noise_hu": round(float(rng.uniform(3, 8)), 1),
        "order": str(rng.choice(STORAGE_ORDERS)),
        "noise_seed": int(rng.integers(2**31)),
    }


def _analyse(volume, mask, order: str, name: str) -> tuple[SeriesResult, Any]:
    """Store ``volume`` (and its truth mask) in ``order``, analyse it and score it; errors are kept."""
    from ctlens.analysis.analyze import analyze
    from ctlens.preprocess.orientation import reorient

    res = SeriesResult(name, f"synthetic/{name}")
    t0 = time.perf_counter()
    findings = None
    try:
        stored = reorient(volume, order)
        lesions = (
            [] if mask is None else mask_lesions(reorient(volume.with_array(mask.astype(np.uint8)), order), stored)
        )
        findings = analyze(stored)
        score_series(res, findings.candidates, lesions)
        res.region, res.kernel = findings.region, volume.meta.get("kernel")
        res.laa950_percent = findings.measurements.get("laa950_percent")
        res.laa950_raw_percent = findings.measurements.get("laa950_raw_percent")
    except (CTLensError, ValueError, MemoryError, RuntimeError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    res.seconds = round(time.perf_counter() - t0, 2)
    return res, findings


DIAMETER_BINS_MM = (0.0, 10.0, 20.0, float("inf"))
"""Nodule diameter strata of the chest summary: below 10 mm, 10-20 mm, 20 mm and more."""


def _found(scans: list[tuple], keep: Callable[[tuple], bool]) -> dict[str, int]:
    """Planted nodules and found ones among the scans ``keep`` selects."""
    inside = [s[0] for s in scans if s[1] and keep(s)]
    return {"nodules": len(inside), "found": sum(1 for r in inside if any(les.rank is not None for les in r.lesions))}


def _chest_summary(scans: list[tuple[SeriesResult, int, bool, float, bool]]) -> dict[str, Any]:
    """Summary of ``(result, planted nodules, has vessel tree, nodule diameter mm, nodule in the tree's lung)``
    per scan; a failed scan keeps its nodule (a miss)."""
    ok = [(r, k, t) for r, k, t, *_ in scans if r.error is None]
    ranks = [les.rank for r, _, _ in ok for les in r.lesions]
    tree = [r.false_candidates for r, _, t in ok if t]
    no_tree = [r.false_candidates for r, _, t in ok if not t]
    strata = {
        f"{lo:g}-{hi:g} mm": _found(scans, lambda s, lo=lo, hi=hi: lo <= s[3] < hi)
        for lo, hi in zip(DIAMETER_BINS_MM, DIAMETER_BINS_MM[1:], strict=False)
    }
    return {
        "scans": len(scans),
        "failed": len(scans) - len(ok),
        "nodules": sum(s[1] for s in scans),
        "found": sum(1 for k in ranks if k is not None),
        "rank_1": sum(1 for k in ranks if k == 1),
        "found_by_diameter": strata,
        "found_in_vessel_tree_lung": _found(scans, lambda s: s[4]),
        "found_elsewhere": _found(scans, lambda s: not s[4]),
        "region_not_chest": sum(1 for r, _, _ in ok if r.region != "chest"),
        "froc": froc([(s[0].scores, s[0].hits, s[1]) for s in scans], FP_RATES),
        "false_per_scan_vessel_tree": round(float(np.mean(tree)), 3) if tree else None,
        "false_per_scan_no_tree": round(float(np.mean(no_tree)), 3) if no_tree else None,
        "scans_vessel_tree": len(tree),
    }


def run_synthetic(
    n: int,
    seed: int,
    *,
    development: bool = False,
    scale: float = 1.0,
    on_case: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Draw, build, analyse and score ``n`` chest and ``n`` head cases from ``seed`` (module doc).

    ``development=True`` allows a development seed (the report says so); ``scale`` > 1 coarsens every grid
    (fast tests). Returns a JSON-ready dict with the cases, the per-scan results and the summaries.
    """
    if n < 1:
        raise CTLensError(f"--synthetic needs at least 1 case, got {n}")
    if not development:
        check_seed(seed)
    rng = np.random.default_rng(seed)
    say = on_case or (lambda _line: None)
    chest_cases = [draw_chest_case(rng) for _ in range(n)]
    bleeds = rng.permutation([i < (n + 1) // 2 for i in range(n)])
    head_cases = [draw_head_case(rng, bool(b)) for b in bleeds]
    per_kernel: dict[str, list[tuple[SeriesResult, int, bool, float, bool]]] = {"soft": [], "sharp": []}
    laa = []
    for i, case in enumerate(chest_cases):
        spacing = tuple(s * scale for s in case["spacing"])
        laa_pair = {}
        for version, (kernel, _, smooth) in (("soft", _SOFT), ("sharp", _SHARP)):
            vol, truth = chest_case_phantom(
                case["fov_mm"],
                spacing,
                lung_hu=case["lung_hu"],
                nodule_radius_mm=case["nodule_radius_mm"],
                nodule_side=case["nodule_side"],
                nodule_offset=case["nodule_offset"],
                vessel_side=case["vessel_side"],
                emphysema_radius_mm=case["emphysema_radius_mm"],
                emphysema_side=case["emphysema_side"],
                noise_hu=case["noise"][version],
                noise_sigma_mm=smooth * case["soft_sigma_mm"],
                seed=case["noise_seed"] + (version == "sharp"),
            )
            vol.meta["kernel"] = kernel
            res, _ = _analyse(vol, truth["nodule_mask"], case["order"], f"chest{i:03d}_{version}")
            planted = int(truth["nodule_mask"] is not None and bool(truth["nodule_mask"].any()))
            same = case["vessel_side"] == case["nodule_side"]
            per_kernel[version].append((res, planted, bool(truth["tree"]), 2.0 * case["nodule_radius_mm"], same))
            laa_pair[version] = res.laa950_percent
            laa_pair["truth"] = round(truth["laa950_percent"], 3)
            rank = [les.rank for les in res.lesions]
            say(f"chest {i} {version}: {res.error or f'nodule rank {rank}, {res.false_candidates} false'}")
        laa.append(laa_pair)
    head = []
    for i, case in enumerate(head_cases):
        spacing = tuple(s * scale for s in case["spacing"])
        vol, truth = head_case_phantom(
            (120.0, 192.0, 192.0),
            spacing,
            bleed_radius_mm=case["bleed_radius_mm"],
            bleed_hu=case["bleed_hu"],
            bleed_offset=case["bleed_offset"],
            noise_hu=case["noise_hu"],
            noise_sigma_mm=1.0,
            seed=case["noise_seed"],
        )
        res, findings = _analyse(vol, truth["bleed_mask"], case["order"], f"head{i:03d}")
        expected = float((1 - np.exp(-truth["bleed_ml"] / 0.5)) * np.clip((case["bleed_hu"] - 45) / 25, 0, 1))
        head.append(
            {
                "name": res.name,
                "bleed": truth["bleed_ml"] > 0,
                "bleed_ml": round(truth["bleed_ml"], 3),
                "bleed_hu": case["bleed_hu"],
                "truth_score": round(expected, 3),
                "reported": len(res.scores),
                "hit": any(les.rank is not None for les in res.lesions),
                "region": res.region,
                "error": res.error,
            }
        )
        ml = truth["bleed_ml"]
        say(f"head {i}: {res.error or f'bleed {ml:.2f} mL, {len(res.scores)} reported'}")
    return {
        "seed": seed,
        "n": n,
        "development_seed": seed < HELD_OUT_MIN_SEED,
        "scale": scale,
        "chest": {k: _chest_summary(v) for k, v in per_kernel.items()},
        "laa950": _laa_summary(laa),
        "head": _head_summary(head),
        "cases": {"chest": chest_cases, "head": head_cases},
        "results": {
            "chest": {k: [_series_dict(r) for r, *_ in v] for k, v in per_kernel.items()},
            "head": head,
            "laa950": laa,
        },
    }


def _series_dict(r: SeriesResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(r) | {"false_candidates": r.false_candidates}


def _laa_summary(pairs: list[dict]) -> dict[str, Any]:
    ok = [p for p in pairs if p.get("soft") is not None and p.get("sharp") is not None]
    signed = [p["sharp"] - p["soft"] for p in ok]
    diff = [abs(d) for d in signed]
    err = [abs(p[k] - p["truth"]) for p in ok for k in ("soft", "sharp")]
    return {
        "pairs": len(pairs),
        "failed": len(pairs) - len(ok),
        "median_abs_diff_pp": round(float(np.median(diff)), 3) if diff else None,
        "max_abs_diff_pp": round(float(np.max(diff)), 3) if diff else None,
        "mean_sharp_minus_soft_pp": round(float(np.mean(signed)), 3) if signed else None,
        "median_abs_error_vs_truth_pp": round(float(np.median(err)), 3) if err else None,
    }


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {
        "k": k,
        "n": n,
        "value": round(k / n, 3) if n else None,
        "ci95": [round(lo, 3), round(hi, 3)] if n else None,
    }


def _head_summary(head: list[dict]) -> dict[str, Any]:
    pos = [h for h in head if h["bleed"]]
    neg = [h for h in head if not h["bleed"]]
    strong = [h for h in pos if h["truth_score"] >= 0.5]
    weak = [h for h in pos if h["truth_score"] < 0.5]
    return {
        "cases": len(head),
        "failed": sum(1 for h in head if h["error"]),
        "sensitivity": _rate(sum(h["hit"] for h in pos), len(pos)),
        "sensitivity_truth_score_at_least_0.5": _rate(sum(h["hit"] for h in strong), len(strong)),
        "sensitivity_truth_score_below_0.5": _rate(sum(h["hit"] for h in weak), len(weak)),
        "specificity": _rate(sum(1 for h in neg if not h["error"] and h["reported"] == 0), len(neg)),
        "region_not_head": sum(1 for h in head if not h["error"] and h["region"] != "head"),
    }


def _r(rate: dict[str, Any]) -> str:
    if not rate["n"]:
        return "- (0 cases)"
    lo, hi = rate["ci95"]
    return f"{rate['k']}/{rate['n']} = {rate['value']:.2f} (95 % CI {lo:.2f}-{hi:.2f})"


def format_synthetic(report: dict[str, Any]) -> list[str]:
    """Text lines of a :func:`run_synthetic` report."""
    dev = " [DEVELOPMENT SEED: not a held-out result]" if report["development_seed"] else " (held out)"
    lines = [f"synthetic evaluation, seed {report['seed']}, {report['n']} chest + {report['n']} head cases{dev}"]
    for kernel, s in report["chest"].items():
        sens = ", ".join(f"{f:g}: {'-' if v is None else f'{v:.2f}'}" for f, v in s["froc"]["sensitivity"].items())
        lines += [
            f"chest {kernel}: {s['scans']} scans ({s['failed']} failed, {s['region_not_chest']} not seen as chest), "
            f"{s['nodules']} nodules, found {s['found']}, rank 1: {s['rank_1']}",
            "  found by nodule diameter: "
            + ", ".join(f"{k} {v['found']}/{v['nodules']}" for k, v in s["found_by_diameter"].items())
            + f"; in the vessel tree's lung {s['found_in_vessel_tree_lung']['found']}/"
            f"{s['found_in_vessel_tree_lung']['nodules']}, elsewhere {s['found_elsewhere']['found']}/"
            f"{s['found_elsewhere']['nodules']}",
            f"  FROC sensitivity at false candidates per scan {{{sens}}} (curve ends at "
            f"{s['froc']['curve_ends_at']:g} per scan)",
            f"  false candidates per scan: with a vessel tree {s['false_per_scan_vessel_tree']} "
            f"({s['scans_vessel_tree']} scans), without {s['false_per_scan_no_tree']}",
        ]
    la = report["laa950"]
    lines.append(
        f"LAA-950 soft vs sharp ({la['pairs']} pairs, {la['failed']} failed): "
        f"median |diff| {la['median_abs_diff_pp']} pp, "
        f"max {la['max_abs_diff_pp']} pp, mean sharp - soft {la['mean_sharp_minus_soft_pp']} pp; "
        f"median |error| vs truth {la['median_abs_error_vs_truth_pp']} pp"
    )
    h = report["head"]
    lines += [
        f"head: {h['cases']} cases ({h['failed']} failed, {h['region_not_head']} not seen as head); "
        "report threshold 0.5",
        f"  sensitivity {_r(h['sensitivity'])}; specificity {_r(h['specificity'])}",
        f"  sensitivity, bleeds whose truth score >= 0.5: {_r(h['sensitivity_truth_score_at_least_0.5'])}; "
        f"below 0.5: {_r(h['sensitivity_truth_score_below_0.5'])}",
    ]
    return lines
