"""Your own classifiers run on a study: ``*.h5`` / ``*.keras`` (Keras 3 on the torch backend, no TensorFlow) and
``*.onnx`` (onnxruntime) found in one folder (ScanSage's ``models/brain_model.h5`` and the like).

:func:`run_user_models` loads every model file of the folder (once per process; a changed file is loaded again),
fits the study to each model's declared input (:mod:`ctlens.analysis.user_model_input`) and returns one entry per
file, in file-name order::

    {"file": "brain_model.h5", "format": "keras", "sha256": "<first 16 hex digits>",
     "input": {"layout": "NHWC", "shape": [1, 224, 224, 3], "source": "key slice 57 of 120", ...},
     "outputs": [{"name": "dense_1", "shape": [1, 4], "values": [...]}],
     "labels": {"glioma": 0.03, ...},            # when a sidecar names the classes
     "note": "model output, not a diagnosis"}

A file that cannot be loaded or run gives an entry with a one-line ``warning`` instead of ``outputs`` (never an
exception, never a server path: only the file's name). An optional sidecar ``<model stem>.json`` next to a model
may set ``labels`` (class names of the first output), ``input_range`` (``0-1`` default, ``0-255``, ``-1-1``,
``raw``) and ``window`` (a CT window name or ``[width, level]``).

Models run on the CPU unless torch / onnxruntime see an accelerator. Model files can hold code (Keras Lambda
layers are refused: ``safe_mode``); put only models you trust in the folder.

Example:
    >>> import tempfile
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "broken.onnx").write_bytes(b"not a model")
    >>> entry = run_user_models(Volume(np.zeros((3, 8, 8), np.int16)), folder)[0]
    >>> entry["file"], entry["note"], entry["warning"].startswith("could not load broken.onnx")
    ('broken.onnx', 'model output, not a diagnosis', True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.analysis.user_model_input import INPUT_RANGES, fit_input
from ctlens.core.volume import Volume

__all__ = ["MODEL_SUFFIXES", "NOTE", "find_model_files", "load_user_model", "models_fingerprint", "run_user_models"]

logger = logging.getLogger("ctlens.analysis")

NOTE = "model output, not a diagnosis"
MODEL_SUFFIXES = {".h5": "keras", ".hdf5": "keras", ".keras": "keras", ".onnx": "onnx"}
MAX_VALUES = 1000
"""Most output values an entry carries per output (a larger output, e.g. a mask, is cut and marked)."""
_ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


@dataclass
class LoadedModel:
    """A loaded model: its file name, format, fingerprint, declared input and a ``predict(x) -> [(name, y)]``."""

    file: str
    kind: str
    sha256: str
    input_shape: tuple[Any, ...]
    input_dtype: Any
    predict: Callable[[np.ndarray], list[tuple[str, np.ndarray]]]
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelFailure(Exception):
    """A model that cannot be loaded or run; the message names the file only."""


_CACHE: dict[tuple[str, int, int], LoadedModel | ModelFailure] = {}
_CACHE_LOCK = threading.Lock()


def find_model_files(folder: Path | str | None) -> list[Path]:
    """The model files of ``folder`` (``*.h5``, ``*.hdf5``, ``*.keras``, ``*.onnx``; hidden files skipped), sorted.

    A missing folder has none.

    Example:
        >>> find_model_files("/no/such/folder")
        []
    """
    if folder is None:
        return []
    root = Path(folder)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.suffix.lower() in MODEL_SUFFIXES and not p.name.startswith(".") and p.is_file()]


def models_fingerprint(folder: Path | str | None) -> str | None:
    """16 hex digits that change when a model file or its sidecar is added, removed or rewritten; None without models.

    Built from names, sizes and modification times (cheap: no file is read).

    Example:
        >>> models_fingerprint("/no/such/folder") is None
        True
    """
    files = find_model_files(folder)
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        for part in (path, path.with_suffix(".json")):
            try:
                stat = part.stat()
            except OSError:
                continue
            h.update(f"{part.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _one_line(exc: BaseException, path: Path) -> str:
    """The reason of ``exc`` on one line, without the folder's path (only the file name is shown)."""
    text = str(exc) or type(exc).__name__
    for where in {str(path.resolve()), str(path)}:
        text = text.replace(where, path.name)
    for where in {str(path.resolve().parent), str(path.parent)}:
        text = text.replace(where + os.sep, "")
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _keras_module() -> Any:
    """Keras 3 on the torch backend (chosen before Keras is first imported; TensorFlow is never needed)."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    import keras

    return keras


def _keras_output_name(tensor: Any, index: int) -> str:
    """The name of the layer that makes a Keras output (``dense_1``), else the tensor's name."""
    layer = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    return str(getattr(layer, "name", None) or getattr(tensor, "name", None) or f"output_{index}")


def _load_keras(path: Path) -> tuple[tuple[Any, ...], Any, Callable[[np.ndarray], list[tuple[str, np.ndarray]]]]:
    keras = _keras_module()
    model = keras.models.load_model(path, compile=False, safe_mode=True)
    inputs = list(getattr(model, "inputs", None) or [])
    if len(inputs) != 1:
        raise ModelFailure(f"it has {len(inputs)} inputs; user models take exactly one")
    shape = tuple(None if d is None else int(d) for d in inputs[0].shape)
    names = [_keras_output_name(o, i) for i, o in enumerate(getattr(model, "outputs", None) or [])]

    def predict(x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        y = model.predict(x, verbose=0)
        if isinstance(y, dict):
            return [(str(k), np.asarray(v)) for k, v in y.items()]
        ys = y if isinstance(y, list | tuple) else [y]
        return [(names[i] if i < len(names) else f"output_{i}", np.asarray(v)) for i, v in enumerate(ys)]

    return shape, np.float32, predict


def _load_onnx(path: Path) -> tuple[tuple[Any, ...], Any, Callable[[np.ndarray], list[tuple[str, np.ndarray]]]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would go to stderr of the service
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelFailure(f"it has {len(inputs)} inputs; user models take exactly one")
    declared = inputs[0]
    dtype = _ONNX_TYPES.get(declared.type)
    if dtype is None:
        raise ModelFailure(f"its input type {declared.type} is not supported")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in declared.shape)
    names = [o.name for o in session.get_outputs()]

    def predict(x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        return [(n, np.asarray(v)) for n, v in zip(names, session.run(None, {declared.name: x}), strict=True)]

    return shape, dtype, predict


def load_user_model(path: Path | str) -> LoadedModel:
    """Load one model file (cached while its size and modification time stay); raises :class:`ModelFailure`.

    Example:
        >>> load_user_model("/no/such/model.onnx")
        Traceback (most recent call last):
        ...
        ctlens.analysis.user_models.ModelFailure: could not load model.onnx: no such file
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise ModelFailure(f"could not load {path.name}: no such file") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is None:
        cached = _load_uncached(path)
        with _CACHE_LOCK:
            for old in [k for k in _CACHE if k[0] == key[0]]:
                del _CACHE[old]
            _CACHE[key] = cached
    if isinstance(cached, ModelFailure):
        raise cached
    return cached


def _load_uncached(path: Path) -> LoadedModel | ModelFailure:
    kind = MODEL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        return ModelFailure(f"could not load {path.name}: not a .h5, .keras or .onnx file")
    try:
        if path.stat().st_size == 0:
            raise ModelFailure("the file is empty")
        shape, dtype, predict = _load_keras(path) if kind == "keras" else _load_onnx(path)
        return LoadedModel(path.name, kind, _digest(path), shape, dtype, predict)
    except ModelFailure as exc:
        return ModelFailure(f"could not load {path.name}: {exc}")
    except ImportError as exc:
        package = "keras" if kind == "keras" else "onnxruntime"
        return ModelFailure(f"could not load {path.name}: {package} is not installed ({exc.name or exc})")
    except Exception as exc:  # any loader error: a broken file must not take the study down
        logger.info("user model %s could not be loaded: %s", path.name, type(exc).__name__)
        return ModelFailure(f"could not load {path.name}: {_one_line(exc, path)}")


def _sidecar(path: Path) -> dict[str, Any]:
    """The model's ``<stem>.json`` options (labels, input_range, window); raises ``ValueError`` when invalid."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        spec = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{side.name} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{side.name} must hold a JSON object")
    labels = spec.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise ValueError(f"{side.name}: labels must be a list of names")
    if spec.get("input_range", "0-1") not in INPUT_RANGES:
        raise ValueError(f"{side.name}: input_range must be one of {', '.join(INPUT_RANGES)}")
    window = spec.get("window")
    if isinstance(window, list):
        spec["window"] = tuple(float(v) for v in window)
    return spec


def _output(name: str, y: np.ndarray) -> dict[str, Any]:
    flat = np.asarray(y, dtype=np.float64).ravel()
    out: dict[str, Any] = {"name": name, "shape": list(np.shape(y))}
    out["values"] = [round(float(v), 6) if np.isfinite(v) else None for v in flat[:MAX_VALUES]]
    if flat.size > MAX_VALUES:
        out["truncated"] = True
    return out


def _run_one(
    path: Path, volume: Volume, key_slice: int | None, window: str | tuple[float, float] | None
) -> dict[str, Any]:
    kind = MODEL_SUFFIXES.get(path.suffix.lower(), "unknown")
    entry: dict[str, Any] = {"file": path.name, "format": kind}
    try:
        model = load_user_model(path)
        entry["sha256"] = model.sha256
        spec = _sidecar(path)
        default_range = "0-255" if model.input_dtype == np.uint8 else "0-1"
        x, used = fit_input(
            volume,
            model.input_shape,
            model.kind,
            key_slice=key_slice,
            window=spec.get("window") or window,
            input_range=spec.get("input_range", default_range),
            dtype=model.input_dtype,
        )
        entry["input"] = used
        t0 = time.perf_counter()
        with model.lock:
            outputs = model.predict(x)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        entry["outputs"] = [_output(name, y) for name, y in outputs]
        labels = spec.get("labels")
        if labels and outputs:
            first = np.asarray(outputs[0][1], dtype=np.float64).ravel()
            if first.size == len(labels):
                entry["labels"] = {name: round(float(v), 6) for name, v in zip(labels, first, strict=True)}
            else:
                entry["warning"] = f"{len(labels)} labels for {first.size} output values: labels not applied"
    except ModelFailure as exc:
        entry["warning"] = str(exc)
    except Exception as exc:  # fitting or running failed: a warning in the result, never a failed upload
        entry["warning"] = f"could not run {path.name}: {_one_line(exc, path)}"
    entry["note"] = NOTE
    return entry


def run_user_models(
    volume: Volume,
    folder: Path | str | None,
    *,
    key_slice: int | None = None,
    window: str | tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """One entry per model file in ``folder`` run on ``volume`` (see the module docstring); [] when there are none.

    ``key_slice`` (0-based) is the slice 2-D models see (default: the middle one); ``window`` the CT window
    (default ``soft_tissue``) unless a model's sidecar sets its own. Never raises for a model.
    """
    return [_run_one(path, volume, key_slice, window) for path in find_model_files(folder)]
