"""Zero-shot findings for one CT: probability per finding from a 3D CLIP checkpoint (or a model).

``zero_shot(volume, findings=..., checkpoint=...)`` prepares the volume like the training export
(:func:`ctlens.pipelines.embed.prepare_volume`), embeds it and scores "{finding} is present." against
"{finding} is not present." (softmax; optional prompt ensemble). ``volume`` may be a
:class:`~ctlens.core.volume.Volume` or a path any ctlens reader opens (DICOM folder / zip, NIfTI, ...).
These are model outputs, not diagnoses.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> model = build_model(load_config("ctclip-tiny"))
    >>> ct = np.full((20, 40, 40), -1000, np.int16); ct[:, 10:30, 10:30] = 40
    >>> probs = zero_shot(Volume(ct, spacing=(2.0, 1.0, 1.0)), findings=["Emphysema", "Cardiomegaly"], model=model)
    >>> list(probs), all(0 < p < 1 for p in probs.values())
    (['Emphysema', 'Cardiomegaly'], True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ctlens.core.errors import InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.data.ct_report import CT_RATE_FINDINGS
from ctlens.models.clip3d.prompts import DEFAULT_PROMPTS, PROMPT_ENSEMBLE, finding_probabilities
from ctlens.pipelines.embed import embed_volume, load_clip

__all__ = ["zero_shot"]


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
