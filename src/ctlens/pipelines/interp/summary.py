"""Summaries of the interpolation harness that cannot flatter: same cases for every method, failures shown.

:func:`summarise` groups the per-case rows of :mod:`ctlens.pipelines.interp.evaluation` by scope (all,
through-plane, in-plane), simulation, factor and method. Each method is averaged over **the same cases**;
one that failed (an error, a NaN PSNR or no row) on any case of the group reports ``failed`` and no mean --
a mean over the cases it survived would reward failing on the hard one. The gain over cubic is the mean
of per-case gains, with a 95 % percentile bootstrap CI that resamples ``group`` units (studies).
:func:`write_reports` writes strict JSON and Markdown.

Example:
    >>> rows = [dict(case="a", simulation="drop", factor=2, method=m, psnr=p, psnr_body=p, ssim=0.9, seconds=1.0)
    ...         for m, p in (("cubic", 30.0), ("flow", 32.0))]
    >>> [(r["method"], r["gain_over_cubic"]) for r in summarise(rows)]
    [('cubic', 0.0), ('flow', 2.0)]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["summarise", "write_reports"]


def _failed(row: dict[str, Any] | None) -> bool:
    return (
        row is None
        or bool(row.get("error"))
        or not (isinstance(row.get("psnr"), float | int) and row["psnr"] == row["psnr"])
    )


def _bootstrap_gain(gains: list[float], groups: list[str], n_boot: int = 2000, seed: int = 0) -> list[float]:
    """95 % percentile CI of the mean per-case gain, resampling groups (studies) with replacement."""
    units = sorted(set(groups))
    if len(units) < 2 or not all(math.isfinite(g) for g in gains):
        return [math.nan, math.nan]
    members = [[g for g, u in zip(gains, groups, strict=True) if u == unit] for unit in units]
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_boot):
        drawn = [v for i in rng.integers(0, len(units), len(units)) for v in members[i]]
        means.append(float(np.mean(drawn)))
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def _scope(axis: str) -> str:
    return "through-plane" if axis == "z" else "in-plane"


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (scope, simulation, factor, method): means over the **same** cases, failures counted (module doc).

    ``scope`` is ``all``, ``through-plane`` or ``in-plane`` (the latter two when present). ``cases`` is the
    number of cases of that (scope, simulation, factor); ``failed`` how many of them the method failed or
    lacks; with any failure the means and the gain are NaN ("failed k of n"), never a mean over survivors.
    ``gain_over_cubic`` is the mean per-case PSNR gain over cubic (dB), ``gain_ci`` its 95 % CI resampling
    ``group`` (study) units.

    Example:
        >>> rows = [dict(case=c, simulation="drop", factor=2, method=m, psnr=p, psnr_body=p, ssim=0.9, seconds=1.0)
        ...         for c, m, p in (("a", "cubic", 30.0), ("a", "flow", 32.0), ("b", "cubic", 20.0),
        ...                         ("b", "flow", float("nan")))]
        >>> [(r["method"], r["cases"], r["failed"], r["psnr"]) for r in summarise(rows)]
        [('cubic', 2, 0, 25.0), ('flow', 2, 1, nan)]
    """
    out = []
    scopes = {"all"} | {_scope(str(r.get("axis", "z"))) for r in rows}
    if len(scopes) == 2:  # one kind only: "all" says it
        scopes = {"all"}
    for scope in ("all", "through-plane", "in-plane"):
        if scope not in scopes:
            continue
        chosen = [r for r in rows if scope == "all" or _scope(str(r.get("axis", "z"))) == scope]
        settings = list(dict.fromkeys((r["simulation"], r["factor"]) for r in chosen))
        for sim, factor in settings:
            here = [r for r in chosen if (r["simulation"], r["factor"]) == (sim, factor)]
            cases = list(dict.fromkeys(r["case"] for r in here))
            by = {(r["case"], r["method"]): r for r in here}
            for method in dict.fromkeys(r["method"] for r in here):
                items = [by.get((c, method)) for c in cases]
                failed = sum(_failed(r) for r in items)
                entry: dict[str, Any] = {
                    "scope": scope,
                    "simulation": sim,
                    "factor": factor,
                    "method": method,
                    "cases": len(cases),
                    "failed": failed,
                }
                for key in ("psnr", "psnr_body", "ssim", "seconds"):
                    values = [float(r[key]) for r in items if r is not None and key in r]
                    entry[key] = math.nan if failed or not values else float(np.mean(values))
                cubic = [by.get((c, "cubic")) for c in cases]
                gains = [
                    float(r["psnr"]) - float(q["psnr"]) if not (_failed(r) or _failed(q)) else math.nan
                    for r, q in zip(items, cubic, strict=True)
                ]
                with np.errstate(invalid="ignore"):
                    ok = not failed and all(not _failed(q) for q in cubic) and all(g == g for g in gains)
                entry["gain_over_cubic"] = float(np.mean(gains)) if ok and gains else math.nan
                groups = [str(r.get("group", r["case"])) for r in items] if ok else []
                entry["gain_ci"] = _bootstrap_gain(gains, groups) if ok else [math.nan, math.nan]
                entry["units"] = len(set(groups))
                out.append(entry)
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _gain(r: dict[str, Any]) -> str:
    if r["failed"]:
        return f"failed on {r['failed']} of {r['cases']}"
    return _fmt(r["gain_over_cubic"])


def _ci(r: dict[str, Any]) -> str:
    low, high = r.get("gain_ci", [math.nan, math.nan])
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{low:+.2f}, {high:+.2f}] ({r.get('units', '?')} units)"


def _markdown(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str:
    lines = [
        "## Averaged over cases",
        "",
        "Every method over the same cases; a method that failed on any case shows as failing, not as a mean.",
        "",
        "| scope | simulation | factor | method | cases | failed | PSNR dB | PSNR body dB | SSIM | gain over cubic dB "
        "| 95 % CI of gain | seconds |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in summary:
        lines.append(
            f"| {r['scope']} | {r['simulation']} | x{r['factor']} | {r['method']} | {r['cases']} | {r['failed']} | "
            f"{_fmt(r['psnr'])} | {_fmt(r['psnr_body'])} | {_fmt(r['ssim'], 4)} | {_gain(r)} | {_ci(r)} | "
            f"{_fmt(r['seconds'], 1)} |"
        )
    lines += [
        "",
        "## Per case",
        "",
        "| case | axis | simulation | factor | method | PSNR dB | PSNR body dB | SSIM | scored / known slices "
        "| seconds | note |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        note = r.get("error") or (f"{r['nonfinite']} non-finite voxels" if r.get("nonfinite") else "")
        if r.get("told_profile"):
            note = f"told profile {r['told_profile']}" + (f"; {note}" if note else "")
        lines.append(
            f"| {r['case']} | {r.get('axis', 'z')} | {r['simulation']} | x{r['factor']} | {r['method']} | "
            f"{_fmt(r['psnr'])} | {_fmt(r['psnr_body'])} | {_fmt(r['ssim'], 4)} | "
            f"{r['scored_slices']} / {r['known_slices']} | {_fmt(r['seconds'], 1)} | {note} |"
        )
    return "\n".join(lines) + "\n"


def write_reports(rows: list[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json`` and ``results.md`` (atomically) into ``out_dir``; return their paths.

    Example:
        >>> import tempfile
        >>> rows = [dict(case="a", simulation="drop", factor=2, method="cubic", psnr=math.inf, psnr_body=40.0,
        ...              ssim=1.0, seconds=0.1, scored_slices=3, known_slices=4, nonfinite=0, error=None)]
        >>> paths = write_reports(rows, tempfile.mkdtemp())
        >>> json.loads(paths["json"].read_text())["rows"][0]["psnr"]
        'inf'
    """
    from ctlens.io.files import atomic_output

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    public = [{k: _json_value(v) for k, v in r.items() if not k.startswith("_")} for r in rows]
    summary = summarise(rows)
    payload = {
        "convention": "PSNR on HU clipped to [-1024, 3071] mapped to [0, 1]; only synthesised slices scored; "
        "summary means over the same cases, a method failing on any case has failed > 0 and no mean",
        "summary": [{k: _json_value(v) for k, v in r.items()} for r in summary],
        "rows": public,
    }
    paths = {"json": out / "results.json", "md": out / "results.md"}
    with atomic_output(paths["json"]) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2, allow_nan=False))
    with atomic_output(paths["md"]) as tmp:
        Path(tmp).write_text(_markdown(rows, summary))
    return paths
