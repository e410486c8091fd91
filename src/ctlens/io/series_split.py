"""Split one stack of planes whose positions repeat into stacks that each hold every position once (as dcm2niix).

A series (one SeriesInstanceUID, one orientation, matrix and pixel spacing) whose planes share positions holds
several volumes: acquisitions (contrast phases a minute apart, ``AcquisitionNumber`` 1, 2, 3), echoes, magnitude
and phase images, time points. :func:`split_repeats` separates them with the header fields dcm2niix uses, tried in
this order, each only where positions still repeat:

1. ``AcquisitionNumber`` (enhanced files: ``FrameAcquisitionNumber``),
2. ``EchoNumbers``, then ``EchoTime`` (enhanced: ``EffectiveEchoTime``),
3. ``ImageType`` (enhanced: ``FrameType``): magnitude / phase / real / imaginary,
4. diffusion b-value and gradient direction (:mod:`ctlens.io.diffusion`),
5. ``TemporalPositionIdentifier`` (enhanced: ``TemporalPositionIndex``), then ``TriggerTime``, then ``StackID``,
6. acquisition time (``AcquisitionDateTime`` / ``AcquisitionTime``), then ``ContentTime``,
7. enhanced files: the non-spatial DimensionIndexValues (:func:`ctlens.io.enhanced_frames.volume_dimension_key`).

Echo, image type and temporal position come before the times because echoes and image types of one acquisition
share its times. A field with a value per group of planes (numbers 1..3): the planes of each value form a part;
neighbouring values whose planes neither share a position nor leave a gap are merged back (some scanners number
every rotation of one helical acquisition). A time: planes in time order, a new part starting where a position
would repeat (every plane has its own time within one acquisition). A part whose positions still repeat is split
further with the next fields; one that cannot be split keeps its repeats (the reader then refuses it, naming them).

Duplicated files (one SOPInstanceUID, and frame, twice) are dropped first: :func:`drop_duplicates`.
Which parts are entries of their own and which are volumes of one entry: :mod:`ctlens.io.series_volumes`.

Example:
    >>> import numpy as np
    >>> from pydicom.dataset import Dataset
    >>> from ctlens.io.dicom_headers import SliceRef
    >>> def plane(z, acq):
    ...     ds = Dataset(); ds.AcquisitionNumber = acq
    ...     return SliceRef(None, None, ds, np.array([0, 0, z]), np.array([1, 0, 0, 0, 1, 0.0]), (1, 1), 2, 2,
    ...                     1, 0, f"1.{z}.{acq}")
    >>> parts = split_repeats([plane(z, a) for a in (1, 2) for z in (0.0, 2.0, 4.0)])
    >>> [(p.label, p.key, len(p.refs)) for p in parts]
    [('acq 1', 'acq1', 3), ('acq 2', 'acq2', 3)]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctlens.io.dicom_geometry import POSITION_TOLERANCE_MM
from ctlens.io.dicom_headers import SliceRef

__all__ = ["SplitKey", "StackPart", "by_instance", "drop_duplicates", "has_repeats", "split_repeats", "SPLIT_KEYS"]

_GAP_FACTOR = 1.5
"""Merging two parts may not leave a step longer than this times the usual step (a real gap between stacks)."""


@dataclass(frozen=True)
class SplitKey:
    """One header field that can tell stacks apart: where to read it, how to name its parts, how it splits."""

    name: str
    """Short tag for keys (``acq`` -> ``acq2``)."""
    label: str
    """Human prefix for labels (``acq`` -> ``acq 2``)."""
    keywords: tuple[str, ...]
    """Header keywords, or per-frame ``SliceRef.extra`` keys, read in this order (first present wins)."""
    time: bool = False
    """Times: planes in time order, a new part where a position would repeat (see the module docstring)."""


SPLIT_KEYS: tuple[SplitKey, ...] = (
    SplitKey("acq", "acq", ("FrameAcquisitionNumber", "AcquisitionNumber")),
    SplitKey("echo", "echo", ("EchoNumbers",)),
    SplitKey("te", "TE", ("EffectiveEchoTime", "EchoTime")),
    SplitKey("type", "type", ("FrameType", "ImageType")),
    SplitKey("dwi", "diffusion", ("DiffusionKey",)),
    SplitKey("tp", "time point", ("TemporalPositionIndex", "TemporalPositionIdentifier")),
    SplitKey("trig", "trigger", ("TriggerTime",)),
    SplitKey("stack", "stack", ("StackID",)),
    SplitKey("at", "acquired", ("FrameAcquisitionDateTime", "AcquisitionDateTime", "AcquisitionTime"), time=True),
    SplitKey("ct", "content", ("ContentTime",), time=True),
    SplitKey("dim", "dimension", ("DimensionVolume",)),
)
"""The fields :func:`split_repeats` tries, in order."""


class Tagged:
    """Mixin: a part of a series named by its ``tags`` (``(key, label)`` pairs such as ``("acq2", "acq 2")``)."""

    tags: list[tuple[str, str]]

    @property
    def key(self) -> str:
        """Stable short key of the part (``acq2``, ``acq2-echo1``); empty for an unsplit series."""
        return "-".join(t for t, _ in self.tags)

    @property
    def label(self) -> str:
        """Human words naming the part (``acq 2``, ``acq 2, echo 1``); empty for an unsplit series."""
        return ", ".join(text for _, text in self.tags)


@dataclass
class StackPart(Tagged):
    """One stack found in a series: its planes and what tells it apart (empty for an unsplit series)."""

    refs: list[SliceRef]
    tags: list[tuple[str, str]] = field(default_factory=list)
    """``(key, label)`` per field that split it, e.g. ``[("acq2", "acq 2")]``."""
    fields: list[str] = field(default_factory=list)
    """The :class:`SplitKey` name of each tag (``["acq"]``), in the same order."""


def _along(refs: list[SliceRef]) -> np.ndarray:
    """Each plane's position along the slice normal (of the first plane's orientation), mm."""
    iop = np.asarray(refs[0].orientation, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    normal /= np.linalg.norm(normal)
    return np.array([r.position for r in refs], dtype=np.float64).reshape(-1, 3) @ normal


def has_repeats(refs: list[SliceRef]) -> bool:
    """Whether two planes of ``refs`` lie at the same position along the slice normal (within 0.01 mm).

    Example:
        >>> has_repeats([])
        False
    """
    if len(refs) < 2:
        return False
    along = np.sort(_along(refs))
    return bool(np.diff(along).min() < POSITION_TOLERANCE_MM)


def _value(ref: SliceRef, keywords: tuple[str, ...]) -> Any:
    for keyword in keywords:
        value = ref.extra.get(keyword) if keyword in ref.extra else ref.value(keyword)
        if value not in (None, ""):
            return value
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) or (hasattr(value, "__iter__") and not isinstance(value, str | bytes)):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _order(text: str) -> tuple[int, float, str]:
    """Sort numbers numerically and before words; missing values last."""
    if not text:
        return (2, 0.0, "")
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _seconds(text: str) -> float | None:
    """``HHMMSS.frac`` or ``YYYYMMDDHHMMSS.frac`` (DICOM TM / DT, optional offset) as seconds; None if unreadable."""
    match = re.fullmatch(r"(\d{8})?(\d{2})(\d{2})?(\d{2})?(\.\d+)?([+-]\d{4})?", text.replace(":", ""))
    if not match:
        return None
    date, hh, mm, ss, frac, _ = match.groups()
    day = float(date) * 86400.0 if date else 0.0  # only the order matters: a later day sorts later
    return day + int(hh) * 3600 + int(mm or 0) * 60 + int(ss or 0) + float(frac or 0.0)


_COMPLEX_KINDS = {
    "M": "magnitude",
    "MAGNITUDE": "magnitude",
    "P": "phase",
    "PHASE": "phase",
    "R": "real",
    "REAL": "real",
    "I": "imaginary",
    "IMAGINARY": "imaginary",
}
"""ImageType values (MR: the third and later) naming the component of a complex image."""


def _complex_kind(image_type: str) -> str:
    r"""``magnitude``, ``phase``, ``real`` or ``imaginary`` from an ImageType text (``ORIGINAL\PRIMARY\P\ND``).

    "" when none (or several) of these are named.

    Example:
        >>> _complex_kind("ORIGINAL\\PRIMARY\\P\\ND"), _complex_kind("ORIGINAL\\PRIMARY\\AXIAL")
        ('phase', '')
    """
    values = [v.strip().upper() for v in image_type.split("\\")[2:]]
    kinds = {_COMPLEX_KINDS[v] for v in values if v in _COMPLEX_KINDS}
    return kinds.pop() if len(kinds) == 1 else ""


def _shown(key: SplitKey, text: str) -> tuple[str, str]:
    """Field value ``text`` as it appears in a part's key and in its label."""
    if key.name == "type":
        kind = _complex_kind(text)
        if kind:
            return kind, kind
        return re.sub(r"[^a-z0-9]+", "", text.lower()) or "none", text or "-"
    if key.name == "dwi":
        return re.sub(r"[^a-z0-9.-]+", "_", text.lower()).strip("_") or "none", text or "-"
    clean = re.sub(r"[^A-Za-z0-9.+-]+", "", text)
    if key.time:
        return re.sub(r"[^0-9]", "", clean)[:20] or "none", text or "-"
    shown = clean.rstrip("0").rstrip(".") if "." in clean else clean
    return shown or "none", shown or "-"


def _tag(key: SplitKey, first: str, last: str | None = None) -> tuple[str, str]:
    """The part's ``(key, label)`` for field value ``first`` (or the values ``first`` to ``last``)."""
    tag, text = _shown(key, first)
    sep = "-" if key.name == "type" else ""
    if last is not None and last != first:
        tag_last, text_last = _shown(key, last)
        tag, text = f"{tag}-{tag_last}", f"{text} to {text_last}"
    return f"{key.name}{sep}{tag}", f"{key.label} {text}"


def _evenly_joined(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether stacks at positions ``a`` and ``b`` share no position and together leave no gap."""
    both = np.sort(np.concatenate([a, b]))
    steps = np.diff(both)
    if not len(steps):
        return True
    if steps.min() < POSITION_TOLERANCE_MM:
        return False
    own = [np.diff(np.sort(x)).max(initial=0.0) for x in (a, b)]
    return bool(steps.max() <= max(_GAP_FACTOR * float(np.median(steps)), *own) + POSITION_TOLERANCE_MM)


def _by_value(refs: list[SliceRef], key: SplitKey) -> list[StackPart]:
    """Parts by field value, neighbouring values merged back when they join into one even stack."""
    groups: dict[str, list[SliceRef]] = {}
    for ref in refs:
        groups.setdefault(_text(_value(ref, key.keywords)), []).append(ref)
    if len(groups) < 2:
        return [StackPart(refs)]
    parts: list[tuple[list[str], list[SliceRef]]] = []
    for value in sorted(groups, key=_order):
        if parts and _evenly_joined(_along(parts[-1][1]), _along(groups[value])):
            parts[-1][0].append(value)
            parts[-1][1].extend(groups[value])
        else:
            parts.append(([value], list(groups[value])))
    return [StackPart(members, [_tag(key, values[0], values[-1])], [key.name]) for values, members in parts]


def _by_time(refs: list[SliceRef], key: SplitKey) -> list[StackPart]:
    """Planes in time order, a new part before a position would repeat (module docstring).

    The new part starts at the longest pause since the current part began (the break between two acquisitions),
    not at the repeated plane itself: a second acquisition may begin where the first did not reach. Not used when
    a plane has no time.
    """
    times = [_seconds(_text(_value(r, key.keywords))) for r in refs]
    if any(t is None for t in times) or len(set(times)) < 2:
        return [StackPart(refs)]
    along = _along(refs)
    order = sorted(range(len(refs)), key=lambda i: (times[i], along[i]))
    t = np.array([times[i] for i in order], dtype=np.float64)
    z = along[order]
    starts = [0]
    k = 1
    while k < len(order):
        begin = starts[-1]
        if np.any(np.abs(z[begin:k] - z[k]) < POSITION_TOLERANCE_MM):
            pauses = np.diff(t[begin : k + 1])  # pauses[j] is the pause before plane begin + j + 1
            cut = begin + 1 + int(len(pauses) - 1 - np.argmax(pauses[::-1]))  # the longest, the latest of equals
            starts.append(cut)
            k = cut + 1
        else:
            k += 1
    bounds = [*starts, len(order)]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        members = [refs[i] for i in order[lo:hi]]
        out.append(StackPart(members, [_tag(key, _text(_value(members[0], key.keywords)))], [key.name]))
    return out


def by_instance(refs: list[SliceRef]) -> list[StackPart]:
    """Every position repeated ``n`` times and nothing else telling the stacks apart: stack ``k`` holds the
    ``k``-th plane of each position in InstanceNumber order (as dcm2niix stacks such series); else ``[refs]``.

    Example:
        >>> by_instance([])[0].refs
        []
    """
    if len(refs) < 2:
        return [StackPart(list(refs))]
    along = _along(refs)
    order = sorted(range(len(refs)), key=lambda i: (refs[i].instance_number, i))
    seen: list[float] = []
    counts: list[int] = []
    volume_of: dict[int, int] = {}
    for i in order:
        match = next((j for j, z in enumerate(seen) if abs(z - along[i]) < POSITION_TOLERANCE_MM), None)
        if match is None:
            seen.append(float(along[i]))
            counts.append(0)
            match = len(seen) - 1
        volume_of[i] = counts[match]
        counts[match] += 1
    if len(set(counts)) != 1 or counts[0] < 2:
        return [StackPart(list(refs))]
    return [
        StackPart([refs[i] for i in order if volume_of[i] == v], [(f"rep{v + 1}", f"volume {v + 1}")], ["rep"])
        for v in range(counts[0])
    ]


def split_repeats(
    refs: list[SliceRef], keys: tuple[SplitKey, ...] = SPLIT_KEYS, *, instance_order: bool = False
) -> list[StackPart]:
    """Split ``refs`` (one orientation, matrix, pixel spacing) where positions repeat (module docstring).

    A stack without repeated positions comes back whole, without tags, whatever its headers say.
    ``instance_order``: where no field tells repeated positions apart, fall back to :func:`by_instance` (MR: volumes
    that differ in nothing but their InstanceNumbers, as some scanners write time series).
    """
    if not has_repeats(refs):
        return [StackPart(list(refs))]
    for k, key in enumerate(keys):
        split: Callable[[list[SliceRef], SplitKey], list[StackPart]] = _by_time if key.time else _by_value
        parts = split(refs, key)
        if len(parts) < 2:
            continue
        out = []
        for part in parts:
            for sub in split_repeats(part.refs, keys[k + 1 :], instance_order=instance_order):
                out.append(StackPart(sub.refs, part.tags + sub.tags, part.fields + sub.fields))
        return out
    return by_instance(refs) if instance_order else [StackPart(list(refs))]


def drop_duplicates(refs: list[SliceRef]) -> tuple[list[SliceRef], list[str]]:
    """Keep the first plane of each SOPInstanceUID (and frame); return (planes kept, names of files dropped).

    Example:
        >>> drop_duplicates([])
        ([], [])
    """
    seen: set[str] = set()
    kept: list[SliceRef] = []
    dropped: list[str] = []
    for ref in refs:
        if ref.sop_uid and ref.sop_uid in seen:
            dropped.append(ref.file.path.name if ref.file is not None else ref.sop_uid)
            continue
        seen.add(ref.sop_uid)
        kept.append(ref)
    return kept, dropped
