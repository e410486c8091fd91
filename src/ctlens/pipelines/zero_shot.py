"""Zero-shot findings for one CT: probability per finding from a 3D CLIP checkpoint (or a model).

``zero_shot(volume, findings=..., checkpoint=...)`` prepares the volume like the training export
(:func:`ctlens.pipelines.embed.prepare_volume`), embeds it and scores "{finding} is present." against
"{finding} is not present." (softmax; optional prompt ensemble). ``volume`` may be a
:class:`~ctlens.core.volume.Volume` or a path any ctlens reader opens (DICOM folder / zip, NIfTI, ...).
These are model outputs, not diagnoses.

``add_zero_shot(findings, volume, checkpoint_or_model)`` puts the same scores into an analysis result
(:attr:`ctlens.analysis.findings.Findings.zero_shot`), with the model and prompts in ``findings.parameters``
and the time in ``findings.timings``; ``ctlens analyze SCAN --clip-checkpoint FOLDER`` uses it.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> model = build_model(load_config("ctclip-tiny"))
    >>> ct = np.full((20, 40, 40), -1000, np.int16); ct[:, 10:30, 10:30] = 40
    >>> probs = zero_shot(Volume(ct, spacing=(2.0, 1.0, 1.0)), findings=["Emphysema", "Cardiomegaly"], model=model)
    >>> list(probs), all(0 < p < 1 for p in probs.values())
    (['Emphysema', 'Cardiomegaly'], True)
    >>> from ctlens.analysis.findings import Findings
    >>> f = add_zero_shot(Findings(region="chest"), Volume(ct, spacing=(2.0, 1.0, 1.0)), model, ["Emphysema"])
    >>> list(f.zero_shot), f.parameters["zero_shot"]["config"], "zero_shot" in f.timings
    (['Emphysema'], 'ctclip-tiny', True)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ctlens.analysis.findings import ZERO_SHOT_NOTE, Findings
from ctlens.core.errors import InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.models.clip3d.prompts import DEFAULT_PROMPTS, PROMPT_ENSEMBLE, finding_probabilities
from ctlens.pipelines.embed import embed_volume, load_clip

__all__ = ["add_zero_shot", "zero_shot"]


@torch.no_grad()
def zero_shot(
    volume: Volume | str | os.PathLike[str],
    findings: Sequence[str] = CT_RATE_FINDINGS,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    model: Any = None,
    ensemble: bool = False,
    load_options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """``{finding: probability present}`` for one volume (module doc); give ``checkpoint`` or ``model``."""
    if model is None:
        if checkpoint is None:
            raise InputNotFoundError("zero-shot needs a CLIP checkpoint", hint="pass --checkpoint FOLDER")
        model = load_clip(checkpoint)
    if not isinstance(volume, Volume):
        from ctlens.io.loader import load

        path = Path(volume)
        volume = load(path, **(load_options or {}))
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
) -> Findings:
    """Fill ``findings.zero_shot`` with :func:`zero_shot` scores of ``volume``; returns ``findings`` (module doc).

    ``checkpoint_or_model`` is a checkpoint folder (loaded once and cached) or a loaded model;
    ``findings_names`` defaults to the 18 CT-RATE findings. A volume that is not 3-D (one slice, a 2-D image)
    gets a warning instead of scores. ``parameters["zero_shot"]`` records the checkpoint folder's name (not
    its path), the model config, the prompts and the note that these are model scores, not diagnoses.
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
    probs = zero_shot(volume, findings=names, model=model, ensemble=ensemble)
    findings.zero_shot = {name: round(float(p), 6) for name, p in probs.items()}
    findings.parameters["zero_shot"] = {
        "checkpoint": checkpoint,
        "config": model.cfg.name,
        "prompts": "ensemble" if ensemble else "default",
        "findings": len(names),
        "note": ZERO_SHOT_NOTE,
    }
    findings.timings["zero_shot"] = time.perf_counter() - start
    return findings
