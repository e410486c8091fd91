"""Evaluation harness for slice interpolation that cannot flatter anyone.

For each CT and each (simulation, factor):

1. **ground truth**: the thin axis. A scan whose slices are thin enough (``spacing_z <= 1.5 x`` the
   in-plane spacing) is used along z; a thick-only scan is turned on its side and its in-plane x axis
   (columns) serves as the thin "slice" axis (``axis="auto"``; force with ``"z"`` / ``"x"`` / ``"y"``);
2. **thick input**: simulated by dropping slices (as the papers do) or as slab averages with a
   Gaussian slice profile of FWHM = thick spacing (:mod:`ctlens.data.slice_profiles`);
3. every method interpolates the thick input back to the thin grid;
4. **only synthesised slices are scored** -- thin positions that are not the centre of a thick slice;
   the known positions are never part of any number;
5. PSNR on [-1024, 3071] HU -> [0, 1], the same within a body mask, SSIM
   (:mod:`ctlens.pipelines.interp.metrics`), seconds per method;
6. ``self_supervised`` models the acquisition: it is run told the simulation's own profile (``matched``)
   and, as ``self_supervised_mismatched``, told the other one (``smore_profiles``), since on real data
   nobody knows the exact profile.

:func:`summarise` averages every method over the **same** cases: a method that failed (error or no finite
PSNR) on any case of a group is reported as failing (``failed`` k of n, no mean), never as a mean of the
cases it survived. Groups: all cases, through-plane cases (ground truth along z) and in-plane cases (a
thick scan on its side, the self-supervised method's favourite) on their own. The gain over cubic is the
mean of per-case gains with a 95 % bootstrap CI that resamples studies (two series of one study, e.g. two
kernels, are one unit).

Results: ``results.json``, ``results.md`` (per case and averaged, with the gain over cubic) and a PNG
grid of one synthesised slice per method for each case (``grid_<case>_<sim>_x<factor>.png``).

Example:
    >>> import numpy as np
    >>> gt = np.random.default_rng(0).normal(0, 100, (9, 16, 16)).astype(np.float32)
    >>> rows = evaluate_array(gt, factor=4, simulation="drop", methods=["linear"], progress=False)
    >>> rows[0]["method"], rows[0]["scored_slices"], rows[0]["known_slices"]
    ('linear', 6, 3)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CTLensError, InterpolationError
from ctlens.core.volume import Volume
from ctlens.data.slice_profiles import SIMULATIONS, simulate_thick, thick_count
from ctlens.pipelines.interp.grid import output_positions
from ctlens.pipelines.interp.interpolate import interpolate_array
from ctlens.pipelines.interp.metrics import nonfinite_count, psnr, ssim
from ctlens.pipelines.interp.summary import summarise, write_reports
from ctlens.preprocess.windows import to_display_uint8

__all__ = [
    "DEFAULT_METHODS",
    "EvalCase",
    "discover_cases",
    "evaluate_array",
    "ground_truth",
    "run_eval",
    "scored_indices",
    "summarise",
    "write_reports",
]

DEFAULT_METHODS = ("nearest", "linear", "cubic", "flow", "self_supervised")
THIN_ENOUGH = 1.5
"""z is used as ground truth when ``spacing_z <= THIN_ENOUGH x max(in-plane spacing)``."""
MIN_THIN_SLICES = 9


@dataclass
class EvalCase:
    """One CT for the harness: ``name``, the thin ground truth [thin, a, b] (HU), its axis and spacings (mm)."""

    name: str
    thin: np.ndarray
    axis: str
    spacing: tuple[float, float, float]
    group: str = ""
    """The bootstrap unit (the DICOM study; the name when unknown): series of one study are not independent."""


def scored_indices(n_thin: int, factor: int) -> np.ndarray:
    """Thin indices that are synthesised (not a thick-slice centre) -- the only ones ever scored.

    Example:
        >>> scored_indices(9, 4).tolist()
        [1, 2, 3, 5, 6, 7]
    """
    index = np.arange(n_thin)
    return index[index % int(factor) != 0]


def ground_truth(volume: Volume, axis: str = "auto", name: str = "volume") -> EvalCase:
    """The thin axis of ``volume`` as an :class:`EvalCase` (see module doc for ``axis``).

    Example:
        >>> v = Volume(np.zeros((4, 6, 8), np.int16), spacing=(5.0, 0.7, 0.7))
        >>> case = ground_truth(v)
        >>> case.axis, case.thin.shape
        ('x', (8, 4, 6))
    """
    sz, sy, sx = volume.spacing
    if axis == "auto":
        axis = "z" if sz <= THIN_ENOUGH * max(sy, sx) else "x"
    order = {"z": (0, 1, 2), "y": (1, 0, 2), "x": (2, 0, 1)}
    if axis not in order:
        raise InterpolationError(f"axis must be auto, z, y or x, got {axis!r}", path=name)
    thin = np.ascontiguousarray(np.transpose(np.asarray(volume.array, np.float32), order[axis]))
    spacing = tuple(float(np.asarray(volume.spacing)[a]) for a in order[axis])
    return EvalCase(name, thin, axis, spacing)  # type: ignore[arg-type]


def discover_cases(path: str | Path, axis: str = "auto") -> list[EvalCase]:
    """Every CT below ``path`` (DICOM series, NIfTI / NRRD / MHA files; MR and label maps skipped).

    DICOM is loaded with ``uneven="resample"`` (tilt corrected by default).

    Example:
        >>> import tempfile
        >>> discover_cases(tempfile.mkdtemp())
        []
    """
    from ctlens.io import load
    from ctlens.io.dicom_headers import dicom_folders
    from ctlens.io.loader import file_kind

    root = Path(path)
    sources: list[tuple[str, Path, dict[str, Any]]] = []
    if root.is_file():
        kind = file_kind(root)
        sources.append((root.name, root, {"uneven": "resample"} if kind == "dicom" else {}))
    else:
        for folder in dicom_folders(root):
            sources.append((str(folder.relative_to(root)) or root.name, folder, {"uneven": "resample"}))
        for file in sorted(root.rglob("*")):
            if file.is_file() and file_kind(file) in ("nifti", "itk"):
                sources.append((str(file.relative_to(root)), file, {}))
    cases = []
    for label, source, options in sources:
        volume = load(source, **options)
        if str(volume.modality).upper() != "CT":
            continue
        case = ground_truth(volume, axis, name=label)
        case.group = str((volume.meta or {}).get("study_uid") or label)
        if case.thin.shape[0] >= MIN_THIN_SLICES:
            cases.append(case)
    return cases


def evaluate_array(
    thin: np.ndarray,
    factor: int,
    simulation: str,
    methods: Sequence[str | Callable[..., np.ndarray]],
    *,
    case: str = "array",
    progress: bool = True,
    options: dict[str, dict[str, Any]] | None = None,
    keep_predictions: bool = False,
    spacing: tuple[float, float, float] | None = None,
    smore_profiles: Sequence[str] = ("matched",),
    axis: str = "z",
    group: str | None = None,
) -> list[dict[str, Any]]:
    """Score ``methods`` on one ground-truth array ``thin`` [z, a, b] (HU) at ``factor`` / ``simulation``.

    A method is a name for :func:`~ctlens.pipelines.interp.interpolate.interpolate_array` or a callable
    ``fn(thick, positions, factor=...) -> array`` (scored under its ``__name__``). Each row: case,
    simulation, factor, method, psnr, psnr_body, ssim, seconds, scored_slices,
    known_slices, nonfinite, error (the message if the method failed), axis, group. ``options[method]`` is
    passed to the method; ``self_supervised`` gets ``spacing`` (thin-axis, a, b mm: which in-plane axes are
    fine enough to learn from) and a slice profile per entry of ``smore_profiles``: ``"matched"`` (the
    simulation's own, row ``self_supervised``) and/or ``"mismatched"`` (the other simulation's, row
    ``self_supervised_mismatched``).

    Example:
        >>> import numpy as np
        >>> thin = np.random.default_rng(1).normal(0, 50, (5, 8, 8))
        >>> row = evaluate_array(thin, 2, "slab", ["nearest"], progress=False)[0]
        >>> row["scored_slices"], row["psnr"] > 20
        (2, True)
    """
    from ctlens.preprocess.masks import foreground_mask

    if simulation not in SIMULATIONS:
        raise InterpolationError(f"simulation must be one of {SIMULATIONS}, got {simulation!r}", path=case)
    factor = int(factor)
    keep = thick_count(thin.shape[0], factor)
    if keep < 2:
        raise InterpolationError(f"{thin.shape[0]} thin slices are too few for x{factor}", path=case)
    gt = np.asarray(thin[: (keep - 1) * factor + 1], np.float32)
    thick = simulate_thick(gt, factor, simulation)
    positions = output_positions(keep, factor)
    scored = scored_indices(gt.shape[0], factor)
    body = foreground_mask(gt, "ct")[scored]
    runs: list[tuple[str | Callable[..., np.ndarray], str, dict[str, Any]]] = []
    for method_or_fn in methods:
        fn = method_or_fn if callable(method_or_fn) else None
        method = getattr(fn, "__name__", "custom") if fn is not None else str(method_or_fn)
        method_options = dict((options or {}).get(method, {}))
        if method != "self_supervised":
            runs.append((method_or_fn, method, method_options))
            continue
        if spacing is not None:
            method_options.setdefault("spacing", (spacing[0] * factor, spacing[1], spacing[2]))
        for told in smore_profiles:
            if told not in ("matched", "mismatched"):
                raise InterpolationError(f"smore profile must be matched or mismatched, got {told!r}", path=case)
            other = next(sim for sim in SIMULATIONS if sim != simulation)
            profile = simulation if told == "matched" else other
            name = method if told == "matched" else f"{method}_mismatched"
            runs.append((method_or_fn, name, {"profile": profile, **method_options}))
    rows = []
    for method_or_fn, method, method_options in runs:
        fn = method_or_fn if callable(method_or_fn) else None
        row: dict[str, Any] = {
            "case": case,
            "group": group or case,
            "axis": axis,
            "simulation": simulation,
            "factor": factor,
            "method": method,
            "scored_slices": int(len(scored)),
            "known_slices": int(keep),
            "error": None,
        }
        start = time.perf_counter()
        try:
            if fn is not None:
                pred = np.asarray(fn(thick, positions, factor=factor), np.float32)
            else:
                base = "self_supervised" if method.startswith("self_supervised") else method
                pred = interpolate_array(thick, positions, base, factor=factor, progress=progress, **method_options)
            if "profile" in method_options:
                row["told_profile"] = method_options["profile"]
        except (CTLensError, ValueError, RuntimeError) as exc:
            row.update(psnr=math.nan, psnr_body=math.nan, ssim=math.nan, seconds=time.perf_counter() - start)
            row.update(nonfinite=0, error=f"{type(exc).__name__}: {exc}")
            rows.append(row)
            continue
        row["seconds"] = time.perf_counter() - start
        if pred.shape != gt.shape:
            raise InterpolationError(f"{method} returned shape {pred.shape}, expected {gt.shape}", path=case)
        synth = pred[scored]
        row["psnr"] = psnr(synth, gt[scored])
        row["psnr_body"] = psnr(synth, gt[scored], mask=body)
        row["ssim"] = ssim(synth, gt[scored])
        row["nonfinite"] = nonfinite_count(synth)
        if keep_predictions:
            row["_prediction"] = pred
            row["_truth"] = gt
        rows.append(row)
    return rows


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:60]


def write_grid(
    rows: list[dict[str, Any]],
    path: str | Path,
    window: tuple[float, float] = (-160.0, 240.0),
    aspect: float = 1.0,
) -> Path:
    """PNG: ground truth, then each method's prediction and |error| for one synthesised slice.

    The slice is the synthesised one nearest the middle between two known slices, in the middle of the
    stack. Needs rows made with ``keep_predictions=True``. Soft-tissue window (W400 L40) by default;
    ``aspect`` = row spacing / column spacing of the shown plane (thick-only scans seen from the side).
    """
    from PIL import Image, ImageDraw

    from ctlens.io.files import atomic_output

    rows = [r for r in rows if "_prediction" in r]
    if not rows:
        raise InterpolationError("no predictions to draw", path=str(path))
    gt = rows[0]["_truth"]
    factor = rows[0]["factor"]
    middle = (gt.shape[0] // 2 // factor) * factor + factor // 2
    middle = min(middle, gt.shape[0] - 2)
    if middle % factor == 0:
        middle += 1
    low, high = window

    def tile(image: np.ndarray) -> np.ndarray:
        return to_display_uint8(np.nan_to_num(image), low, high)  # NaN drawn as 0 HU, as before

    def err_tile(image: np.ndarray) -> np.ndarray:
        return to_display_uint8(np.abs(np.nan_to_num(image) - gt[middle]), 0.0, 200.0)

    h, w = gt.shape[1:]
    shown_h = h * aspect  # rows drawn at their physical height relative to columns
    zoom = 256.0 / max(shown_h, w)
    size = (max(1, round(w * zoom)), max(1, round(shown_h * zoom)))
    label_h = 14
    columns = [("ground truth", tile(gt[middle]), None)] + [
        (r["method"], tile(r["_prediction"][middle]), err_tile(r["_prediction"][middle])) for r in rows
    ]
    canvas = Image.new("L", (len(columns) * size[0], 2 * size[1] + 2 * label_h), 0)
    draw = ImageDraw.Draw(canvas)
    for c, (label, image, err) in enumerate(columns):
        x0 = c * size[0]
        canvas.paste(Image.fromarray(image).resize(size, Image.BILINEAR), (x0, label_h))
        draw.text((x0 + 2, 1), label, fill=255)
        if err is not None:
            canvas.paste(Image.fromarray(err).resize(size, Image.BILINEAR), (x0, 2 * label_h + size[1]))
            draw.text((x0 + 2, label_h + size[1] + 1), "|error|, 200 HU = white", fill=255)
    out = Path(path)
    with atomic_output(out) as tmp:
        canvas.save(tmp, format="PNG", optimize=True)
    return out


def run_eval(
    data: str | Path,
    out_dir: str | Path,
    *,
    factors: Sequence[int] = (4,),
    simulations: Sequence[str] = SIMULATIONS,
    methods: Sequence[str] = DEFAULT_METHODS,
    axis: str = "auto",
    options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    smore_profiles: Sequence[str] = ("matched", "mismatched"),
) -> dict[str, Any]:
    """Run the harness on every CT under ``data``; write JSON, markdown and PNG grids to ``out_dir``.

    Returns ``{"rows", "summary", "paths"}``.
    """
    from rich.console import Console

    console = Console(stderr=True)
    cases = discover_cases(data, axis)
    if not cases:
        raise InterpolationError(
            "no CT with enough slices found", path=str(data), hint="point at a CT series or folder"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    grids = []
    for case in cases:
        for simulation in simulations:
            for factor in factors:
                if progress:
                    console.print(f"[bold]{case.name}[/] ({case.axis} axis, {case.thin.shape}) {simulation} x{factor}")
                case_rows = evaluate_array(
                    case.thin,
                    factor,
                    simulation,
                    methods,
                    case=case.name,
                    progress=progress,
                    options=options,
                    keep_predictions=True,
                    spacing=case.spacing,
                    smore_profiles=smore_profiles,
                    axis=case.axis,
                    group=case.group or case.name,
                )
                grid_name = f"grid_{_slug(case.name)}_{simulation}_x{factor}.png"
                aspect = case.spacing[1] / case.spacing[2]
                grids.append(write_grid(case_rows, out / grid_name, aspect=aspect))
                for r in case_rows:
                    r.pop("_prediction", None)
                    r.pop("_truth", None)
                rows.extend(case_rows)
                write_reports(rows, out)  # partial results survive an interrupted run
    paths = write_reports(rows, out)
    return {"rows": rows, "summary": summarise(rows), "paths": {**paths, "grids": grids}}
