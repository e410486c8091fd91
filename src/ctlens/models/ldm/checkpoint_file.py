"""Read a slice-interpolation checkpoint: a JSON file naming its safetensors weights.

Example:
    >>> from ctlens.models.ldm.checkpoint_file import read_checkpoint
    >>> read_checkpoint("/no/such/run")
    Traceback (most recent call last):
    ...
    ctlens.core.errors.InterpolationError: /no/such/run: checkpoint not found (give the step_*.json or the run folder)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ctlens.core.errors import InterpolationError

__all__ = ["read_checkpoint"]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a checkpoint given by its JSON or by a run folder holding ``latest.json``."""
    from safetensors.torch import load_file

    file = Path(path)
    if file.is_dir():
        file = file / "latest.json"
    if not file.is_file():
        raise InterpolationError("checkpoint not found", path=file, hint="give the step_*.json or the run folder")
    try:
        meta = json.loads(file.read_bytes())
        weights = weights_file(file, meta)
        tensors = load_file(str(weights))
    except InterpolationError:
        raise
    except (OSError, ValueError, KeyError, RecursionError) as exc:  # UnicodeDecodeError and JSON faults included
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise InterpolationError(f"unreadable checkpoint ({type(exc).__name__}: {reason})", path=file) from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise InterpolationError(f"unreadable weights ({type(exc).__name__}: {reason})", path=file) from None
    return tensors, meta


def weights_file(file: Path, meta: Any) -> Path:
    """The weights named by checkpoint JSON ``file`` (its ``meta``): a plain file name in the same folder.

    An absolute path, a ``..``, a sub-folder or a link leading out of the folder raises :class:`InterpolationError`.

    Example:
        >>> weights_file(Path("/run/step_10.json"), {"weights": "step_10.safetensors"})
        PosixPath('/run/step_10.safetensors')
        >>> weights_file(Path("/run/step_10.json"), {"weights": "../../etc/passwd"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.core.errors.InterpolationError: ... must name a file in the checkpoint folder, not '../../etc/passwd'
    """
    name = meta.get("weights") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise InterpolationError('no "weights" file named in the checkpoint', path=file)
    plain = Path(name).name == name and name not in (".", "..") and "\\" not in name and "\0" not in name
    target = file.parent / name
    if plain and target.is_symlink():  # a link must stay inside the folder
        try:
            plain = target.resolve(strict=True).parent == file.parent.resolve(strict=True)
        except (OSError, RuntimeError):
            plain = False
    if not plain:
        raise InterpolationError(f'"weights" must name a file in the checkpoint folder, not {name[:80]!r}', path=file)
    return target
