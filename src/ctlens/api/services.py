"""The one place where the service calls the layers below it (analysis, codec, LLM payload).

Those layers are imported lazily, at call time; when one is not installed (or not built yet) the call raises
:class:`ServiceError` with status 501/503, which the API answers as an RFC 7807 problem instead of crashing.
Everything else in ``ctlens.api`` goes through these functions, so only this module changes as they evolve.

Example:
    >>> isinstance(layer_status(), dict)
    True
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CTLensError, ServiceError
from ctlens.core.volume import Volume
from ctlens.io.files import file_versions


def _attr(module: str, name: str, what: str) -> Any:
    """``module.name`` or a 503 problem saying which layer is missing."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ServiceError(f"{what} is not available ({module}: {exc})", status=503) from None
    func = getattr(mod, name, None)
    if func is None:
        raise ServiceError(f"{what} is not available ({module}.{name} is missing)", status=503)
    return func


def layer_status() -> dict[str, bool]:
    """Which optional layers the service can use right now (shown by ``/readyz``)."""
    out = {}
    for key, (module, name) in {
        "analysis": ("ctlens.analysis", "analyze"),
        "analysis_2d": ("ctlens.analysis", "analyze_image2d"),
        "codec": ("ctlens.codec", "encode_volume"),
        "payload": ("ctlens.llm.payload", "build_payload"),
    }.items():
        try:
            out[key] = getattr(importlib.import_module(module), name, None) is not None
        except ImportError:
            out[key] = False
    return out


def findings_json(findings: Any) -> dict[str, Any]:
    """A ``Findings`` object as a JSON-ready dict (its own ``to_json``)."""
    text = findings.to_json() if hasattr(findings, "to_json") else findings
    return json.loads(text) if isinstance(text, str | bytes) else dict(text)


def _as_grid(array: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if array is None:
        return None
    arr = np.asarray(array)
    if arr.size != int(np.prod(shape)):
        return None
    return arr.reshape(shape)


def analyze_volume(
    volume: Volume,
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Findings JSON, heatmap as uint8 (0-255), ROI mask as uint8 and lung labels (0/1 right/2 left, or None)."""
    analyze = _attr("ctlens.analysis", "analyze", "the analysis layer (ctlens.analysis.analyze)")
    findings = analyze(volume)
    labels = _as_grid(getattr(findings, "lung_labels", None), volume.shape)
    return (*_unpack(findings, volume.shape), None if labels is None else labels.astype(np.uint8))


def analyze_image(
    path: Path, shape: tuple[int, int, int]
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """2-D analysis (ROI + heatmap) of an image file; arrays as in :func:`analyze_volume`."""
    analyze = _attr("ctlens.analysis", "analyze_image2d", "2-D analysis (ctlens.analysis.analyze_image2d)")
    findings = analyze(path)
    return _unpack(findings, shape)


def _unpack(findings: Any, shape: tuple[int, ...]) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    heat = _as_grid(getattr(findings, "heatmap", None), shape)
    roi = _as_grid(getattr(findings, "roi_mask", None), shape)
    heat_u8 = (
        None if heat is None else np.clip(np.nan_to_num(heat.astype(np.float32)) * 255 + 0.5, 0, 255).astype(np.uint8)
    )
    roi_u8 = None if roi is None else (roi > 0).astype(np.uint8)
    return findings_json(findings), heat_u8, roi_u8


ZERO_SHOT_NOTE = "model output, not a diagnosis"
CHECKPOINT_FILES = ("config.json", "model.safetensors")


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


def zero_shot_findings(volume: Volume, checkpoint: Path) -> dict[str, Any]:
    """Zero-shot finding probabilities of a 3-D CT from a CLIP checkpoint (ctlens.pipelines.zero_shot).

    The result names the checkpoint by :func:`checkpoint_identity` (``model`` and ``fingerprint``), so a stored
    result can be checked against the checkpoint configured later. Never raises: a missing layer (no torch),
    a bad checkpoint or a failing model becomes a ``warning`` in the returned dict, so the upload still succeeds.

    Example:
        >>> from ctlens.core.volume import Volume
        >>> out = zero_shot_findings(Volume(np.zeros((4, 8, 8), np.int16)), Path("no-such-checkpoint"))
        >>> out["model"], out["fingerprint"], out["probabilities"], "warning" in out
        ('no-such-checkpoint', None, None, True)
    """
    out: dict[str, Any] = {**checkpoint_identity(checkpoint), "probabilities": None, "note": ZERO_SHOT_NOTE}
    try:
        zero_shot = _attr("ctlens.pipelines.zero_shot", "zero_shot", "zero-shot findings (ctlens.pipelines)")
        probs = zero_shot(volume, checkpoint=checkpoint)
    except ServiceError as exc:
        out["warning"] = exc.reason
    except CTLensError as exc:
        out["warning"] = f"zero-shot failed: {exc.reason}"
    except Exception as exc:  # a model error must not take the upload down with it
        out["warning"] = f"zero-shot failed: {type(exc).__name__}"
    else:
        out["probabilities"] = {str(k): round(float(v), 6) for k, v in probs.items()}
    if "warning" in out:  # errors may quote the checkpoint's local path: name the folder only
        for local in sorted({str(Path(checkpoint).resolve()), str(checkpoint)}, key=len, reverse=True):
            if "/" in local or "\\" in local:
                out["warning"] = out["warning"].replace(local, out["model"])
    return out


def save_ctz(volume: Volume, path: Path) -> None:
    """Write the lossless ``.ctz`` container of ``volume`` (ctlens.codec)."""
    try:
        encode = _attr("ctlens.codec", "encode_volume", "the codec layer (ctlens.codec.encode_volume)")
    except ServiceError:
        encode = _attr("ctlens.codec", "save_encoded", "the codec layer (ctlens.codec.save_encoded)")
        encode(volume, path)
        return
    encode(volume, path, progress=False)


def payload_findings(findings: dict[str, Any] | None, limit: int = 5) -> list[dict[str, Any]]:
    """Analysis candidates in the payload builder's terms.

    Boxes stay in the analysis convention (``bbox = (z0, y0, x0, z1, y1, x1)``, inclusive, with the candidate's
    ``slice_range``): ``ctlens.llm.payload`` recognises that pair and converts it to its half-open boxes, in one
    place.

    Example:
        >>> from ctlens.llm.payload import candidate_boxes
        >>> mass = {"kind": "mass", "diameter_mm": 46.2, "bbox": [12, 250, 105, 20, 344, 234], "slice_range": [12, 20]}
        >>> items = payload_findings({"candidates": [mass]})
        >>> items[0]["label"], candidate_boxes(items, (30, 512, 512))
        ('candidate 1 (mass, 46 mm)', [(12, 21, 250, 345, 105, 235)])
    """
    out = []
    for i, cand in enumerate((findings or {}).get("candidates") or []):
        if i == limit or not isinstance(cand, dict):
            break
        box = cand.get("bbox")
        item: dict[str, Any] = {
            "label": f"candidate {i + 1} ({cand.get('kind') or 'region'}, {float(cand.get('diameter_mm', 0)):.0f} mm"
            + (f", {cand['side']}" if cand.get("side") else "")
            + ")",
            "score": float(cand.get("score", 0.0)),
        }
        if isinstance(box, list | tuple) and len(box) == 6:
            slices = cand.get("slice_range") or (box[0], box[3])
            item.update(bbox=[int(v) for v in box], slice_range=[int(v) for v in slices])
        out.append(item)
    return out


def build_payload(
    volume: Volume, question: str, provider: str, model: str, token_budget: int, findings: dict | None = None
) -> Any:
    """The de-identified, token-budgeted LLM payload (ctlens.llm.payload.build_payload)."""
    build = _attr("ctlens.llm.payload", "build_payload", "the LLM payload builder (ctlens.llm.payload)")
    return build(volume, question, provider, model, token_budget, findings=payload_findings(findings), progress=False)


def payload_images(payload: Any) -> list[tuple[bytes, str, str]]:
    """``(bytes, media_type, label)`` of each image in a payload, whatever its exact attribute names."""
    images = getattr(payload, "images", None) or []
    out = []
    for i, img in enumerate(images):
        if isinstance(img, bytes | bytearray):
            out.append((bytes(img), "image/png", f"key image {i + 1}"))
            continue
        data = getattr(img, "png", None) or getattr(img, "data", None) or getattr(img, "bytes", None)
        if data is None and hasattr(img, "save"):  # a PIL image
            buf = io.BytesIO()
            img.save(buf, "PNG")
            data = buf.getvalue()
        if data is None:
            continue
        media = getattr(img, "media_type", None) or "image/png"
        label = getattr(img, "title", None) or getattr(img, "label", None) or f"key image {i + 1}"
        out.append((bytes(data), media, str(label)))
    return out


def payload_text(payload: Any) -> str:
    """The payload's de-identified text block (acquisition facts and legend)."""
    for name in ("text", "legend", "context"):
        value = getattr(payload, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


def payload_token_estimate(payload: Any) -> int | None:
    """The payload's own token estimate, if it has one."""
    value = getattr(payload, "token_estimate", None)
    return int(value) if isinstance(value, int | float) else None
