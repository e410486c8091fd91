"""The one result type of ctlens.analysis: :class:`Findings` (with :class:`Candidate` s), and its JSON form.

``heatmap`` (float16 or float32 in [0, 1], input grid), ``roi_mask`` (bool) and ``lung_labels`` (uint8: 0 none,
1 right lung, 2 left lung; chest analyses only) are arrays: they are left out of the JSON and saved next to it
with :meth:`Findings.save_arrays` (compressed ``.npz``).

``zero_shot`` (finding -> probability in [0, 1]) holds the scores of a 3D CLIP model when one was run
(``ctlens.pipelines.zero_shot.add_zero_shot``, ``ctlens analyze --clip-checkpoint``); empty otherwise. They are
model scores, not diagnoses, and the JSON says so next to them.

Example:
    >>> f = Findings(region="chest", method="demo", measurements={"lung_volume_ml": 4200.0})
    >>> f.candidates.append(Candidate(centre_voxel=(1.0, 2.0, 3.0), diameter_mm=8.0, score=0.7, kind="nodule"))
    >>> g = Findings.from_json(f.to_json())
    >>> g.candidates[0].diameter_mm, g.measurements["lung_volume_ml"], g.heatmap is None, g.zero_shot
    (8.0, 4200.0, True, {})
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CorruptFileError

__all__ = ["ZERO_SHOT_NOTE", "Candidate", "Findings"]

SCHEMA_VERSION = 1
ZERO_SHOT_NOTE = "model scores (3D CLIP zero-shot), not diagnoses"


@dataclass
class Candidate:
    """One finding candidate (a nodule / mass, a hyperdense region, a 2-D region of interest).

    ``centre_voxel`` (z, y, x) and ``bbox`` ``(z0, y0, x0, z1, y1, x1)`` (inclusive) are indices of the input
    volume; ``centre_mm`` is LPS; ``slice_boxes`` maps a slice index to its in-plane box ``(y0, x0, y1, x1)``.
    ``side`` is ``"left"``, ``"right"`` or ``""``; ``score`` in [0, 1] (see the method's docs for its scale).
    """

    centre_voxel: tuple[float, float, float] = (0.0, 0.0, 0.0)
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    diameter_mm: float = 0.0
    volume_ml: float = 0.0
    mean_hu: float = 0.0
    slice_range: tuple[int, int] = (0, 0)
    bbox: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
    side: str = ""
    score: float = 0.0
    kind: str = ""
    slice_boxes: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (slice keys become strings)."""
        d = asdict(self)
        d["slice_boxes"] = {str(k): list(v) for k, v in self.slice_boxes.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "candidate") -> Candidate:
        """Inverse of :meth:`to_dict`; a field of the wrong type raises :class:`CorruptFileError` (``where`` names it).

        Example:
            >>> Candidate.from_dict({"bbox": [0, 1, 2, 3, 4, 5], "slice_boxes": {"2": [0, 0, 1, 1]}}).slice_boxes
            {2: (0, 0, 1, 1)}
            >>> Candidate.from_dict({"score": "high"})
            Traceback (most recent call last):
            ...
            ctlens.core.errors.CorruptFileError: candidate.score is 'high', not a number
        """
        if not isinstance(d, dict):
            raise _wrong(where, d, "an object")
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key, n in (("centre_voxel", 3), ("centre_mm", 3)):
            if key in d:
                d[key] = tuple(_numbers(d[key], f"{where}.{key}", n))
        for key, n in (("slice_range", 2), ("bbox", 6)):
            if key in d:
                d[key] = tuple(_ints(d[key], f"{where}.{key}", n))
        for key in ("diameter_mm", "volume_ml", "mean_hu", "score"):
            if key in d:
                d[key] = _number(d[key], f"{where}.{key}")
        for key in ("side", "kind"):
            if key in d and not isinstance(d[key], str):
                raise _wrong(f"{where}.{key}", d[key], "text")
        boxes = _mapping(d.get("slice_boxes", {}), f"{where}.slice_boxes")
        d["slice_boxes"] = {
            _index(k, f"{where}.slice_boxes"): tuple(_ints(v, f"{where}.slice_boxes[{k}]", 4)) for k, v in boxes.items()
        }
        if "features" in d:
            features = _mapping(d["features"], f"{where}.features")
            d["features"] = {str(k): _number(v, f"{where}.features[{k}]") for k, v in features.items()}
        return cls(**d)


def _wrong(where: str, value: Any, expected: str) -> CorruptFileError:
    return CorruptFileError(f"{where} is {_shown(value)}, not {expected}")


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | type(None)) else type(value).__name__
    text = repr(value) if isinstance(value, str) else text
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, where: str, finite: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(where, value, "a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float (JSON allows any number of digits)
        raise _wrong(where, value, "a number") from None
    if finite and not math.isfinite(number):
        raise _wrong(where, value, "a finite number")
    return number


def _numbers(value: Any, where: str, n: int | None = None) -> list[float]:
    if not isinstance(value, list | tuple) or (n is not None and len(value) != n):
        raise _wrong(where, value, f"a list of {n} numbers" if n else "a list of numbers")
    return [_number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _ints(value: Any, where: str, n: int | None = None, low: int = -(2**62), high: int = 2**62) -> list[int]:
    if not isinstance(value, list | tuple) or (n is not None and len(value) != n):
        raise _wrong(where, value, f"a list of {n} integers" if n else "a list of integers")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise _wrong(f"{where}[{i}]", v, f"an integer in {low}..{high}")
    return list(value)


def _index(key: Any, where: str) -> int:
    """A slice index written as a JSON object key (its decimal text)."""
    text = str(key).strip()
    if not text.lstrip("-").isdigit() or len(text) > 18:
        raise _wrong(where, key, "a map from slice indices")
    return int(text)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(where, value, "an object")
    return value


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _wrong(where, value, "a list of texts")
    return list(value)


def _plain(value: Any) -> Any:
    """numpy scalars / arrays / tuples -> JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass
class Findings:
    """Measurements, candidates, warnings, the method and parameters used, timings, and optional arrays.

    ``zero_shot``: optional finding -> probability scores of a 3D CLIP model (module doc; not diagnoses).
    ``lung_labels``: the lung segmentation of a chest analysis (0 none, 1 right, 2 left; input grid) or ``None``.
    """

    region: str = "unknown"
    method: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    heatmap: np.ndarray | None = None
    roi_mask: np.ndarray | None = None
    input_shape: tuple[int, ...] = ()
    zero_shot: dict[str, float] = field(default_factory=dict)
    lung_labels: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the arrays (their shapes are noted instead)."""
        d = {
            "schema_version": SCHEMA_VERSION,
            "region": self.region,
            "method": self.method,
            "measurements": _plain(self.measurements),
            "candidates": [_plain(c.to_dict()) for c in self.candidates],
            "warnings": list(self.warnings),
            "parameters": _plain(self.parameters),
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
            "input_shape": list(self.input_shape),
            "has_heatmap": self.heatmap is not None,
            "has_roi_mask": self.roi_mask is not None,
            "zero_shot": {str(k): float(v) for k, v in self.zero_shot.items()},
        }
        if self.zero_shot:
            d["zero_shot_note"] = ZERO_SHOT_NOTE
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text (arrays excluded)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Findings:
        """Inverse of :meth:`to_json` (arrays are ``None``; see :meth:`load_arrays`).

        Text that is not JSON, or a document of the wrong shape, raises :class:`CorruptFileError`.

        Example:
            >>> Findings.from_json('{"candidates": [1]}')
            Traceback (most recent call last):
            ...
            ctlens.core.errors.CorruptFileError: candidates[0] is 1, not an object
        """
        try:
            document = json.loads(text)
        except RecursionError:
            raise CorruptFileError("findings JSON nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise CorruptFileError(f"not a findings JSON ({str(exc).splitlines()[0][:120]})") from None
        return cls.from_dict(document)

    @classmethod
    def load(cls, path: str | Path) -> Findings:
        """Read a findings JSON file (:meth:`save`); any fault raises :class:`CorruptFileError` naming the file.

        Example:
            >>> import tempfile
            >>> path = Path(tempfile.mkdtemp()) / "findings.json"
            >>> _ = path.write_bytes(b"\\xff{")
            >>> Findings.load(path)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ctlens.core.errors.CorruptFileError: findings.json: not a findings JSON (...)
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptFileError(f"cannot read ({exc.strerror or exc})", path=path.name) from None
        try:
            return cls.from_json(data)
        except CorruptFileError as exc:
            raise CorruptFileError(exc.reason, path=path.name, hint=exc.hint) from None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Findings:
        """Inverse of :meth:`to_dict` (arrays are ``None``); keys missing in older files get their defaults.

        Each field is checked for its type (:class:`CorruptFileError` says which is wrong).

        Example:
            >>> Findings.from_dict({"region": "chest", "input_shape": [2, 3, 4]}).input_shape
            (2, 3, 4)
            >>> Findings.from_dict({"input_shape": 5})
            Traceback (most recent call last):
            ...
            ctlens.core.errors.CorruptFileError: input_shape is 5, not a list of integers
        """
        if not isinstance(d, dict):
            raise _wrong("the findings document", d, "an object")
        for key in ("region", "method"):
            if key in d and not isinstance(d[key], str):
                raise _wrong(key, d[key], "text")
        candidates = d.get("candidates", [])
        if not isinstance(candidates, list):
            raise _wrong("candidates", candidates, "a list")
        timings = _mapping(d.get("timings", {}), "timings")
        zero_shot = _mapping(d.get("zero_shot") or {}, "zero_shot")
        return cls(
            region=d.get("region", "unknown"),
            method=d.get("method", ""),
            measurements=_mapping(d.get("measurements", {}), "measurements"),
            candidates=[Candidate.from_dict(c, f"candidates[{i}]") for i, c in enumerate(candidates)],
            warnings=_texts(d.get("warnings", []), "warnings"),
            parameters=_mapping(d.get("parameters", {}), "parameters"),
            timings={str(k): _number(v, f"timings[{k}]", True) for k, v in timings.items()},
            input_shape=tuple(_ints(d.get("input_shape", []), "input_shape", low=0)),
            zero_shot={str(k): _number(v, f"zero_shot[{k}]", True) for k, v in zero_shot.items()},
        )

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically (temp file then rename); returns the path."""
        from ctlens.io.files import atomic_output

        path = Path(path)
        with atomic_output(path) as tmp:
            Path(tmp).write_text(self.to_json(), encoding="utf-8")
        return path

    def save_arrays(self, path: str | Path) -> Path | None:
        """Write ``heatmap`` (float16), ``roi_mask`` and ``lung_labels`` to a compressed ``.npz``; ``None`` if none."""
        from ctlens.io.files import atomic_output

        arrays = {}
        if self.heatmap is not None:
            arrays["heatmap"] = self.heatmap.astype(np.float16)
        if self.roi_mask is not None:
            arrays["roi_mask"] = np.packbits(self.roi_mask.astype(bool), axis=None)
            arrays["roi_shape"] = np.asarray(self.roi_mask.shape)
        if self.lung_labels is not None:
            arrays["lung_labels"] = self.lung_labels.astype(np.uint8)
        if not arrays:
            return None
        path = Path(path)
        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    def load_arrays(self, path: str | Path) -> Findings:
        """Fill ``heatmap`` / ``roi_mask`` / ``lung_labels`` from a file of :meth:`save_arrays`; returns self."""
        with np.load(path) as data:
            if "heatmap" in data:
                self.heatmap = data["heatmap"].astype(np.float32)
            if "roi_mask" in data:
                shape = tuple(int(s) for s in data["roi_shape"])
                self.roi_mask = np.unpackbits(data["roi_mask"], count=int(np.prod(shape))).astype(bool).reshape(shape)
            if "lung_labels" in data:
                self.lung_labels = data["lung_labels"]
        return self
