"""The one place where the service calls the layers below it: analysis, zero-shot CLIP, the codec, the LLM payload.

Each call is a direct import made inside the function that needs it, so the service starts without loading
scipy-heavy analysis code, and torch (through :mod:`ctlens.pipelines.zero_shot`) only when a CLIP checkpoint is
set. Results are typed: :class:`~ctlens.analysis.findings.Findings` in, JSON-ready dicts and uint8 arrays out;
:class:`~ctlens.llm.payload_types.Payload` from :func:`build_payload`. A zero-shot model that cannot run becomes a
warning in the study, never a failed upload.

Example:
    >>> sorted(layer_status())
    ['analysis', 'analysis_2d', 'codec', 'payload']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume
from ctlens.io.files import file_versions

if TYPE_CHECKING:
    from ctlens.analysis.findings import Findings
    from ctlens.llm.payload_types import Payload

ZERO_SHOT_NOTE = "model output, not a diagnosis"
CHECKPOINT_FILES = ("config.json", "model.safetensors")
PAYLOAD_CANDIDATES = 5
"""Candidates a chat payload carries (text and crops), best first; ``ctlens payload`` sends as many."""


def layer_status() -> dict[str, bool]:
    """Which layers the service can use right now (shown by ``/readyz``): their imports succeed."""
    out = dict.fromkeys(("analysis", "analysis_2d", "codec", "payload"), False)
    try:
        from ctlens.analysis import analyze, analyze_image2d  # noqa: F401

        out["analysis"] = out["analysis_2d"] = True
    except ImportError:
        pass
    try:
        from ctlens.codec import encode_volume  # noqa: F401

        out["codec"] = True
    except ImportError:
        pass
    try:
        from ctlens.llm.payload import build_payload  # noqa: F401

        out["payload"] = True
    except ImportError:
        pass
    return out


def _as_grid(array: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``array`` reshaped to ``shape``, or None when absent or of another size."""
    if array is None:
        return None
    arr = np.asarray(array)
    if arr.size != int(np.prod(shape)):
        return None
    return arr.reshape(shape)


def _unpack(findings: Findings, shape: tuple[int, ...]) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """The findings as JSON (their own ``to_json``), the heatmap as uint8 (0-255) and the ROI mask as uint8."""
    heat = _as_grid(findings.heatmap, shape)
    roi = _as_grid(findings.roi_mask, shape)
    heat_u8 = (
        None if heat is None else np.clip(np.nan_to_num(heat.astype(np.float32)) * 255 + 0.5, 0, 255).astype(np.uint8)
    )
    roi_u8 = None if roi is None else (roi > 0).astype(np.uint8)
    return json.loads(findings.to_json()), heat_u8, roi_u8


def analyze_volume(
    volume: Volume,
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Findings JSON, heatmap as uint8 (0-255), ROI mask as uint8 and lung labels (0/1 right/2 left, or None)."""
    from ctlens.analysis import analyze

    findings = analyze(volume)
    labels = _as_grid(findings.lung_labels, volume.shape)
    return (*_unpack(findings, volume.shape), None if labels is None else labels.astype(np.uint8))


def analyze_image(
    path: Path, shape: tuple[int, int, int]
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """2-D analysis (ROI + heatmap) of an image file; arrays as in :func:`analyze_volume`."""
    from ctlens.analysis import analyze_image2d

    return _unpack(analyze_image2d(path), shape)


def checkpoint_identity(checkpoint: Path) -> dict[str, str | None]:
    """``{"model": folder name, "fingerprint": 16 hex digits}`` of a CLIP checkpoint folder (never its path).

    The fingerprint is a SHA-256 over ``config.json`` and ``model.safetensors``: the same weights give the same
    fingerprint on any host, a retrained or overwritten checkpoint another one. The hash is computed once per
    file version (remembered by path, size and modification time), so asking again costs two ``stat`` calls.
    A folder without those files has ``fingerprint`` None.

    Example:
        >>> checkpoint_identity(Path("no-such-checkpoint"))
        {'model': 'no-such-checkpoint', 'fingerprint': None}
    """
    folder = Path(checkpoint)
    stats = file_versions(folder, CHECKPOINT_FILES)
    if stats is None:
        return {"model": folder.name, "fingerprint": None}
    try:
        fingerprint: str | None = _content_digest(str(folder.resolve()), stats)
    except OSError:  # removed or unreadable between the stat and the read
        fingerprint = None
    return {"model": folder.name, "fingerprint": fingerprint}


@lru_cache(maxsize=8)
def _content_digest(folder: str, stats: tuple[tuple[int, int], ...]) -> str:
    """SHA-256 of the checkpoint files (``stats`` only keys the cache: a rewritten file is hashed again)."""
    digest = hashlib.sha256()
    for name in CHECKPOINT_FILES:
        with open(Path(folder) / name, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()[:16]


def zero_shot_findings(
    volume: Volume, checkpoint: Path, *, region: str | None = None, coverage: dict[str, float] | None = None
) -> dict[str, Any]:
    """Zero-shot finding probabilities of a 3-D CT from a CLIP checkpoint (ctlens.pipelines.zero_shot).

    The result names the checkpoint by :func:`checkpoint_identity` (``model`` and ``fingerprint``), so a stored
    result can be checked against the checkpoint configured later. Scores are given only inside the checkpoint's
    training domain, as ``ctlens analyze`` and ``ctlens clip zero-shot`` do (body region and modality recorded in
    the checkpoint, :func:`ctlens.pipelines.zero_shot.domain_problem`; ``region`` / ``coverage`` from an analysis
    that already ran save detecting them again): outside it, no probabilities, a ``warning`` saying why and
    ``trained_on``. Never raises: a missing layer (no torch), a bad checkpoint or a failing model becomes a
    ``warning`` in the returned dict, so the upload still succeeds.

    Example:
        >>> from ctlens.core.volume import Volume
        >>> out = zero_shot_findings(Volume(np.zeros((4, 8, 8), np.int16)), Path("no-such-checkpoint"))
        >>> out["model"], out["fingerprint"], out["probabilities"], "warning" in out
        ('no-such-checkpoint', None, None, True)
    """
    out: dict[str, Any] = {**checkpoint_identity(checkpoint), "probabilities": None, "note": ZERO_SHOT_NOTE}
    try:
        from ctlens.pipelines.embed import load_clip
        from ctlens.pipelines.zero_shot import domain_problem, trained_domain, zero_shot  # imports torch

        model = load_clip(checkpoint)
        problem = domain_problem(volume, model, region=region, coverage=coverage)
        if problem:
            out["warning"] = f"zero-shot skipped: {problem}; no scores"
            out["trained_on"] = trained_domain(model)
        else:
            probs = zero_shot(volume, model=model)
            out["probabilities"] = {str(k): round(float(v), 6) for k, v in probs.items()}
    except ImportError as exc:
        out["warning"] = f"zero-shot findings (ctlens.pipelines) is not available (ctlens.pipelines.zero_shot: {exc})"
    except CTLensError as exc:
        out["warning"] = f"zero-shot failed: {exc.reason}"
    except Exception as exc:  # a model error must not take the upload down with it
        out["warning"] = f"zero-shot failed: {type(exc).__name__}"
    if "warning" in out:  # errors may quote the checkpoint's local path: name the folder only
        for local in sorted({str(Path(checkpoint).resolve()), str(checkpoint)}, key=len, reverse=True):
            if "/" in local or "\\" in local:
                out["warning"] = out["warning"].replace(local, out["model"])
    return out


def save_ctz(volume: Volume, path: Path) -> None:
    """Write the lossless ``.ctz`` container of ``volume`` (:func:`ctlens.codec.encode_volume`)."""
    from ctlens.codec import encode_volume

    encode_volume(volume, path, progress=False)


def build_payload(
    volume: Volume, question: str, provider: str, model: str, token_budget: int, findings: Findings | None = None
) -> Payload:
    """The de-identified, token-budgeted LLM payload (:func:`ctlens.llm.payload.build_payload`) with the best
    :data:`PAYLOAD_CANDIDATES` candidates of ``findings``."""
    from ctlens.llm.payload import build_payload as build

    if findings is not None:
        findings = dataclasses.replace(findings, candidates=findings.candidates[:PAYLOAD_CANDIDATES])
    return build(volume, question, provider, model, token_budget, findings=findings, progress=False)
