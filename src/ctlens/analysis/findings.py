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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

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
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        """Inverse of :meth:`to_dict`."""
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("centre_voxel", "centre_mm", "slice_range", "bbox"):
            if key in d:
                d[key] = tuple(d[key])
        d["slice_boxes"] = {int(k): tuple(v) for k, v in d.get("slice_boxes", {}).items()}
        return cls(**d)


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
    def from_json(cls, text: str) -> Findings:
        """Inverse of :meth:`to_json` (arrays are ``None``; see :meth:`load_arrays`)."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Findings:
        """Inverse of :meth:`to_dict` (arrays are ``None``); keys missing in older files get their defaults."""
        return cls(
            region=d.get("region", "unknown"),
            method=d.get("method", ""),
            measurements=d.get("measurements", {}),
            candidates=[Candidate.from_dict(c) for c in d.get("candidates", [])],
            warnings=list(d.get("warnings", [])),
            parameters=d.get("parameters", {}),
            timings=d.get("timings", {}),
            input_shape=tuple(d.get("input_shape", ())),
            zero_shot={str(k): float(v) for k, v in (d.get("zero_shot") or {}).items()},
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
