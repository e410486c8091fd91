"""Zero-shot findings for one CT: probability per finding from a 3D CLIP checkpoint (or a model).

``zero_shot(volume, findings=..., checkpoint=...)`` prepares the volume like the training export
(:func:`ctlens.pipelines.embed.prepare_volume`), embeds it and scores "{finding} is present." against
"{finding} is not present." (softmax; optional prompt ensemble). ``volume`` may be a
:class:`~ctlens.core.volume.Volume` or a path any ctlens reader opens (DICOM folder / zip, NIfTI, ...).
These are model outputs, not diagnoses.

**Training domain.** A checkpoint records the body regions and the modality it was trained on
(``config.input.body_regions`` / ``modality``; checkpoints without them are chest CT). :func:`domain_problem`
says why a scan is outside that domain: another modality (``preprocess.detect_mode``), or a body region
(``analysis.body_region``) that is not a trained one and whose slices are less than ``MIN_DOMAIN_COVERAGE`` of
trained regions. ``add_zero_shot`` (what ``ctlens analyze`` uses) then gives a warning and no scores;
``zero_shot(..., check_domain=True)`` raises :class:`OutOfDomainError`.

``add_zero_shot(findings, volume, checkpoint_or_model)`` puts the same scores into an analysis result
(:attr:`ctlens.analysis.findings.Findings.zero_shot`), with the model and prompts in ``findings.parameters``
and the time in ``findings.timings``; ``ctlens analyze SCAN --clip-checkpoint FOLDER`` uses it.

Example:
    >>> from ctlens.analysis.phantoms import chest_phantom, head_phantom
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> model = build_model(load_config("ctclip-tiny"))
    >>> chest = chest_phantom()[0]
    >>> probs = zero_shot(chest, findings=["Emphysema", "Cardiomegaly"], model=model)
    >>> list(probs), all(0 < p < 1 for p in probs.values())
    (['Emphysema', 'Cardiomegaly'], True)
    >>> from ctlens.analysis.findings import Findings
    >>> f = add_zero_shot(Findings(region="chest"), chest, model, ["Emphysema"])
    >>> list(f.zero_shot), f.parameters["zero_shot"]["config"], "zero_shot" in f.timings
    (['Emphysema'], 'ctclip-tiny', True)
    >>> head = add_zero_shot(Findings(), head_phantom()[0], model, ["Emphysema"])
    >>> head.zero_shot, head.warnings[0][:47]
    ({}, 'zero-shot skipped: the scan is outside the CLIP')
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ctlens.analysis.findings import ZERO_SHOT_NOTE, Findings
from ctlens.core.errors import CTLensError, InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.models.clip3d.prompts import DEFAULT_PROMPTS, PROMPT_ENSEMBLE, finding_probabilities
from ctlens.pipelines.embed import embed_volume, load_clip

__all__ = ["MIN_DOMAIN_COVERAGE", "OutOfDomainError", "add_zero_shot", "domain_problem", "trained_domain", "zero_shot"]

MIN_DOMAIN_COVERAGE = 0.4
"""A scan whose detected region is not a trained one is still in domain when at least this fraction of its slices
are of trained regions (a chest CT reaching into the upper abdomen)."""

_MODES = {"CT": "ct", "MR": "mri"}


class OutOfDomainError(CTLensError):
    """The scan is of a body region or modality the CLIP checkpoint was not trained on."""


def trained_domain(model: Any) -> dict[str, Any]:
    """``{"body_regions": [...], "modality": ...}`` recorded in a model's config (chest CT when not recorded).

    Example:
        >>> from ctlens.models.clip3d import build_model, load_config
        >>> trained_domain(build_model(load_config("ctclip-tiny")))
        {'body_regions': ['chest'], 'modality': 'CT'}
    """
    inp = model.cfg.input
    return {"body_regions": list(getattr(inp, "body_regions", ("chest",))), "modality": getattr(inp, "modality", "CT")}


def _region(volume: Volume) -> tuple[str, dict[str, float]]:
    """Body region and slice coverage of a CT, as ``ctlens.analysis.analyze`` finds them (working grid)."""
    from ctlens.analysis.body_region import body_region
    from ctlens.analysis.grid import AnalysisGrid
    from ctlens.analysis.lungs import segment_lungs
    from ctlens.preprocess.display import to_display
    from ctlens.preprocess.masks import foreground_mask

    volume = to_display(volume)
    grid = AnalysisGrid.for_spacing(volume.spacing, volume.shape)
    hu = grid.downsample(volume.array)
    body = foreground_mask(hu, "ct")
    lungs = segment_lungs(hu, grid.spacing, volume.direction, body=body)
    br = body_region(volume, hu=hu, body=body, lung=lungs.mask, spacing=grid.spacing)
    return br.region, dict(br.coverage)


def domain_problem(
    volume: Volume, model: Any, *, region: str | None = None, coverage: dict[str, float] | None = None
) -> str | None:
    """Why ``volume`` is outside the training domain of ``model`` (module doc), or None when it is inside.

    ``region`` / ``coverage`` from an analysis that already ran (``Findings.region``,
    ``measurements["region_coverage"]``) save detecting them again.

    Example:
        >>> from ctlens.analysis.phantoms import head_phantom
        >>> from ctlens.models.clip3d import build_model, load_config
        >>> print(domain_problem(head_phantom()[0], build_model(load_config("ctclip-tiny"))))
        the scan is outside the CLIP model's training domain: body region head, the model was trained on chest CT
    """
    from ctlens.preprocess.mode import detect_mode

    trained = trained_domain(model)
    regions, modality = trained["body_regions"], str(trained["modality"]).upper()
    what = f"{'/'.join(regions)} {modality}"
    prefix = "the scan is outside the CLIP model's training domain"
    mode, reason = detect_mode(volume)
    if modality in _MODES and mode != _MODES[modality]:
        return f"{prefix}: not {modality} ({reason}), the model was trained on {what}"
    if "any" in regions:
        return None
    if region is None or region in ("", "unknown") or region == "image2d" and volume.shape[0] > 1:
        region, coverage = _region(volume)
    if region in regions:
        return None
    share = sum(float((coverage or {}).get(r, 0.0)) for r in regions)
    if share >= MIN_DOMAIN_COVERAGE:
        return None
    return f"{prefix}: body region {region}, the model was trained on {what}"


@torch.no_grad()
def zero_shot(
    volume: Volume | str | os.PathLike[str],
    findings: Sequence[str] = CT_RATE_FINDINGS,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    model: Any = None,
    ensemble: bool = False,
    load_options: dict[str, Any] | None = None,
    check_domain: bool = False,
) -> dict[str, float]:
    """``{finding: probability present}`` for one volume (module doc); give ``checkpoint`` or ``model``.

    ``check_domain``: raise :class:`OutOfDomainError` for a scan outside the checkpoint's training domain
    (:func:`domain_problem`) instead of scoring it.
    """
    if model is None:
        if checkpoint is None:
            raise InputNotFoundError("zero-shot needs a CLIP checkpoint", hint="pass --checkpoint FOLDER")
        model = load_clip(checkpoint)
    if not isinstance(volume, Volume):
        from ctlens.io.loader import load

        path = Path(volume)
        volume = load(path, **(load_options or {}))
    if check_domain:
        problem = domain_problem(volume, model)
        if problem:
            raise OutOfDomainError(
                problem, hint="zero-shot scores are given only for the trained body region and modality"
            )
    model.eval()
    emb = torch.as_tensor(embed_volume(volume, model), device=model.device)[None]
    templates = PROMPT_ENSEMBLE if ensemble else DEFAULT_PROMPTS
    probs = finding_probabilities(model, emb, list(findings), templates)[0].float().cpu().tolist()
    return dict(zip(findings, probs, strict=True))


def add_zero_shot(
    findings: Findings,
    volume: Volume,
    checkpoint_or_model: str | os.PathLike[str] | Any,
    findings_names: Sequence[str] | None = None,
    *,
    ensemble: bool = False,
    check_domain: bool = True,
) -> Findings:
    """Fill ``findings.zero_shot`` with :func:`zero_shot` scores of ``volume``; returns ``findings`` (module doc).

    ``checkpoint_or_model`` is a checkpoint folder (loaded once and cached) or a loaded model;
    ``findings_names`` defaults to the 18 CT-RATE findings. A volume that is not 3-D (one slice, a 2-D image)
    gets a warning instead of scores; so does a scan outside the checkpoint's training domain (body region or
    modality, :func:`domain_problem`; ``findings.region`` is used when set), with the reason and the trained
    domain in ``parameters["zero_shot"]`` (``skipped``, ``trained_on``). ``parameters["zero_shot"]`` also
    records the checkpoint folder's name (not its path), the model config, the prompts and the note that these
    are model scores, not diagnoses.
    """
    names = list(CT_RATE_FINDINGS if findings_names is None else findings_names)
    if volume.shape[0] < 2:
        findings.warnings.append(f"zero-shot findings need a 3-D CT; skipped for shape {tuple(volume.shape)}")
        return findings
    start = time.perf_counter()
    if isinstance(checkpoint_or_model, str | os.PathLike):
        checkpoint: str | None = Path(checkpoint_or_model).resolve().name
        model = load_clip(checkpoint_or_model)
    else:
        checkpoint, model = None, checkpoint_or_model
    record: dict[str, Any] = {
        "checkpoint": checkpoint,
        "config": model.cfg.name,
        "prompts": "ensemble" if ensemble else "default",
        "findings": len(names),
        "trained_on": trained_domain(model),
        "note": ZERO_SHOT_NOTE,
    }
    if check_domain:
        coverage = findings.measurements.get("region_coverage")
        problem = domain_problem(
            volume, model, region=findings.region, coverage=coverage if isinstance(coverage, dict) else None
        )
        if problem:
            findings.warnings.append(f"zero-shot skipped: {problem}; no scores")
            findings.parameters["zero_shot"] = {**record, "skipped": problem}
            findings.timings["zero_shot"] = time.perf_counter() - start
            return findings
    probs = zero_shot(volume, findings=names, model=model, ensemble=ensemble)
    findings.zero_shot = {name: round(float(p), 6) for name, p in probs.items()}
    findings.parameters["zero_shot"] = record
    findings.timings["zero_shot"] = time.perf_counter() - start
    return findings
