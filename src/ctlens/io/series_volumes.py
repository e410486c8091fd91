"""Which stacks split from one series are entries of their own, and which are volumes of one 4-D entry.

:func:`ctlens.io.series_split.split_repeats` cuts a series whose positions repeat into stacks, each tagged with
the header fields that told it apart. Like dcm2niix, :func:`group_volumes` then keeps apart what a reader
treats as different images, and stacks what is the same image repeated over time or diffusion direction:

* **entries of their own** (one ``list_series`` entry each): echoes (``EchoNumbers`` / ``EchoTime``), image types
  (magnitude / phase / real / imaginary), stacks (``StackID``), and in CT the acquisitions (``AcquisitionNumber``,
  acquisition or content time: contrast phases are read one at a time);
* **volumes of one entry** (``SeriesInfo.n_volumes``; ``ctlens.load(..., volume=k)`` reads one,
  ``ctlens.io.load_volumes`` all): temporal positions, trigger times, diffusion directions, enhanced frames told
  apart by their non-spatial dimension index values alone, and outside CT the
  acquisitions and acquisition / content times (Siemens numbers every fMRI or diffusion volume as its own
  acquisition) and stacks told apart by InstanceNumber order alone
  (:func:`ctlens.io.series_split.by_instance`), provided the stacks lie at the same positions. Stacks at other
  positions stay entries of their own.

The volumes of an entry are in acquisition order, as dcm2niix orders a 4-D series: by the lowest InstanceNumber
of each (classic files), by their frames' ``DimensionIndexValues`` read through the file's DimensionIndexSequence
(enhanced files, :mod:`ctlens.io.enhanced_frames`), then InstanceNumber.

Example:
    >>> group_volumes([], "MR")
    []
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctlens.io.enhanced_frames import dimension_values, volume_order_keys
from ctlens.io.series_split import StackPart, Tagged

__all__ = ["VOLUME_FIELDS", "Entry", "group_volumes", "volume_fields"]

VOLUME_FIELDS = frozenset({"tp", "trig", "dwi", "dim"})
"""Split fields whose stacks at the same positions are volumes of one entry, in every modality (``dim``: the
non-spatial DimensionIndexValues of enhanced frames, :func:`ctlens.io.enhanced_frames.volume_dimension_key`)."""
_NON_CT_VOLUME_FIELDS = frozenset({"acq", "at", "ct", "rep"})
"""... and these too outside CT (module docstring)."""
_SAME_POSITION_MM = 0.05
"""Two stacks whose sorted positions along the normal differ by less than this lie at the same positions."""


def volume_fields(modality: str) -> frozenset[str]:
    """The split fields whose stacks become volumes of one entry in ``modality``.

    Example:
        >>> sorted(volume_fields("CT")), "acq" in volume_fields("MR")
        (['dim', 'dwi', 'tp', 'trig'], True)
    """
    return VOLUME_FIELDS if modality.upper() == "CT" else VOLUME_FIELDS | _NON_CT_VOLUME_FIELDS


@dataclass
class Entry(Tagged):
    """One ``list_series`` entry of a split series: one stack, or several volumes at the same positions."""

    volumes: list[StackPart]
    """The stacks, in acquisition order; one for a 3-D entry."""
    tags: list[tuple[str, str]]
    """``(key, label)`` of the fields that tell this entry apart from the series' other entries."""

    def volume_labels(self, fields: frozenset[str]) -> list[str]:
        """Per volume, the words of its volume-level tags (``time point 3``); "" where none."""
        return [
            ", ".join(text for (_, text), f in zip(v.tags, v.fields, strict=True) if f in fields) for v in self.volumes
        ]


def _along(part: StackPart) -> np.ndarray:
    iop = np.asarray(part.refs[0].orientation, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    normal /= np.linalg.norm(normal)
    return np.sort(np.array([r.position for r in part.refs], dtype=np.float64).reshape(-1, 3) @ normal)


def _same_positions(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.abs(a - b).max(initial=0.0) < _SAME_POSITION_MM)


def _instance_order(part: StackPart) -> int:
    return min(r.instance_number for r in part.refs)


def _volume_order(cluster: list[StackPart]) -> list[int]:
    """Indices of ``cluster`` in acquisition order (module docstring)."""
    frames = [[dimension_values(r.extra.get("DimensionIndexValues")) for r in part.refs] for part in cluster]
    enhanced = all(r.frame is not None for part in cluster for r in part.refs)
    keys = None
    if enhanced and all(d is not None for volume in frames for d in volume):
        keys = volume_order_keys(cluster[0].refs[0].header, frames)  # type: ignore[arg-type]
    if keys is None:
        return sorted(range(len(cluster)), key=lambda i: (_instance_order(cluster[i]), i))
    return sorted(range(len(cluster)), key=lambda i: (keys[i], _instance_order(cluster[i]), i))


def group_volumes(parts: list[StackPart], modality: str) -> list[Entry]:
    """Entries of one series from its split stacks (module docstring), in the order of ``parts``."""
    fields = volume_fields(modality)
    groups: dict[tuple[tuple[str, str], ...], list[StackPart]] = {}
    for part in parts:
        entry_tags = tuple(t for t, f in zip(part.tags, part.fields, strict=True) if f not in fields)
        groups.setdefault(entry_tags, []).append(part)
    entries: list[Entry] = []
    for entry_tags, members in groups.items():
        clusters: list[tuple[np.ndarray, list[StackPart]]] = []
        for part in members:
            along = _along(part)
            for positions, cluster in clusters:
                if _same_positions(positions, along):
                    cluster.append(part)
                    break
            else:
                clusters.append((along, [part]))
        for _, cluster in clusters:
            if len(cluster) == 1:
                entries.append(Entry(cluster, list(cluster[0].tags)))
                continue
            volumes = [cluster[i] for i in _volume_order(cluster)]
            tags = list(entry_tags)
            if len(clusters) > 1:  # other stacks of the same kind at other positions: say which volumes these are
                first, last = volumes[0], volumes[-1]
                words = [text for (_, text), f in zip(first.tags, first.fields, strict=True) if f in fields]
                end = [text for (_, text), f in zip(last.tags, last.fields, strict=True) if f in fields]
                key = "-".join(t for (t, _), f in zip(first.tags, first.fields, strict=True) if f in fields)
                tags.append((f"v{key}", f"{len(volumes)} volumes ({', '.join(words)} to {', '.join(end)})"))
            entries.append(Entry(volumes, tags))
    return entries
