"""Findings as a DICOM Segmentation (binary SEG) on the source geometry, referencing the source instances.

Segments, in this order (empty ones are left out):

* the lungs of a chest analysis: "right lung" and "left lung" from ``Findings.lung_labels`` (SCT Lung with the
  laterality as a modifier), or one "lungs" segment from ``Findings.roi_mask`` when the labels are not there;
  the brain of a head analysis ("brain", from ``roi_mask``);
* one per candidate, labelled ``candidate <rank> (<kind>, <side>)``: the candidate's in-plane box on each of its
  slices (``Candidate.slice_boxes``; its 3-D ``bbox`` when it has none), cut to the volume (a box that is not
  finite or lies outside gives no pixels). The segment description says that it is the candidate's bounding
  region and model output; its property type is SCT Nodule / Mass (Lesion for other kinds), category
  Morphologically Abnormal Structure. Only the first :data:`MAX_CANDIDATE_SEGMENTS` candidates get a segment
  (the SEG's pixels take segments x slices x rows x columns bytes while it is built); the SR reports all.

Every segment is AUTOMATIC, identified as ctlens (name, version) and has a tracking ID and UID that the TID 1500
report (:mod:`ctlens.connect.sr`) repeats. There is one SEG frame per (segment, source instance) with pixels,
and its plane position is that source instance's ImagePositionPatient (the volume slice is cut onto the source
pixel grid, :meth:`~ctlens.connect.source_instances.SourceSeries.frames`). Volume slices with no source
instance (added when uneven slices were resampled) have no frame.

Example:
    >>> seg, segments = build_segmentation(findings, volume, series)  # doctest: +SKIP
    >>> [(s.number, s.label) for s in segments]  # doctest: +SKIP
    [(1, 'right lung'), (2, 'left lung'), (3, 'candidate 1 (mass, right)')]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ctlens import __version__
from ctlens.analysis.findings import Candidate, Findings
from ctlens.connect.dicom_identity import (
    MANUFACTURER,
    MODEL_NAME,
    MODEL_OUTPUT_NOTE,
    algorithm_identification,
    new_uid,
    quiet_person_names,
)
from ctlens.connect.source_instances import SourceSeries
from ctlens.core.volume import Volume

__all__ = [
    "MAX_CANDIDATE_SEGMENTS",
    "SEG_SERIES_NUMBER",
    "SegmentSpec",
    "box_on_plane",
    "build_segmentation",
    "candidate_label",
    "segment_specs",
]

log = logging.getLogger("ctlens.connect")

SEG_SERIES_NUMBER = 9901
MAX_CANDIDATE_SEGMENTS = 20
"""Candidates (best first) that get a SEG segment; the analysis keeps 10, so this bounds other Findings only."""
RIGHT, LEFT = 1, 2
"""``Findings.lung_labels`` values."""
FINDING_TYPES = {"nodule": codes.SCT.Nodule, "mass": codes.SCT.Mass}
"""Candidate kind -> SCT concept; other kinds (hyperdense regions, 2-D ROIs) are SCT Lesion."""
LATERALITY = {"right": codes.SCT.Right, "left": codes.SCT.Left}
_LUNG_COLOUR = (80, 200, 120)
_CANDIDATE_COLOUR = (255, 220, 0)


@dataclass
class SegmentSpec:
    """One segment: what it is (label, codes), where (``plane(z)``: a volume slice mask or None) and its tracking.

    ``candidate``: index into ``Findings.candidates`` (None for anatomy); ``structure``: ``"right lung"``,
    ``"left lung"``, ``"lungs"``, ``"brain"`` or ``"candidate"``; ``number``: the SEG segment number (0 until
    the segment is in a SEG).
    """

    label: str
    description: str
    category: Code
    property_type: Code
    plane: Callable[[int], np.ndarray | None]
    structure: str
    tracking_uid: str
    candidate: int | None = None
    laterality: Code | None = None
    anatomic_region: Code | None = None
    colour: tuple[int, int, int] = _LUNG_COLOUR
    number: int = 0
    frames: list[int] = field(default_factory=list)

    @property
    def tracking_id(self) -> str:
        return self.label


def candidate_label(rank: int, candidate: Candidate) -> str:
    """``"candidate 1 (nodule, left)"``: the label of the ``rank``-th (1-based) candidate in SEG and SR.

    Example:
        >>> candidate_label(2, Candidate(kind="mass", side="right"))
        'candidate 2 (mass, right)'
        >>> candidate_label(1, Candidate(kind="hyperdense"))
        'candidate 1 (hyperdense)'
    """
    details = ", ".join(part for part in (candidate.kind, candidate.side) if part)
    return f"candidate {rank} ({details})" if details else f"candidate {rank}"


def _label_plane(labels: np.ndarray, value: int | None) -> Callable[[int], np.ndarray | None]:
    def plane(z: int) -> np.ndarray | None:
        return labels[z] > 0 if value is None else labels[z] == value

    return plane


def _whole(values: Sequence[object], n: int) -> list[int] | None:
    """``n`` finite numbers as ints, or None."""
    try:
        numbers = [float(v) for v in values]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return [int(v) for v in numbers] if len(numbers) == n and all(math.isfinite(v) for v in numbers) else None


def box_on_plane(box: Sequence[object], rows: int, columns: int, margin: int = 0) -> tuple[int, int, int, int] | None:
    """An inclusive in-plane box ``(y0, x0, y1, x1)``, grown by ``margin`` pixels, cut to a ``rows`` x ``columns``
    plane; None when it is not four finite numbers or lies outside the plane.

    Example:
        >>> box_on_plane((-3, 2, 5, 99), 8, 8), box_on_plane((9, 0, 12, 3), 8, 8), box_on_plane((0, 0, 1), 8, 8)
        ((0, 2, 5, 7), None, None)
        >>> box_on_plane((2, 2, 3, 3), 8, 8, margin=2)
        (0, 0, 5, 5)
    """
    values = _whole(box, 4)
    if values is None:
        return None
    y0, x0, y1, x1 = values[0] - margin, values[1] - margin, values[2] + margin, values[3] + margin
    y0, x0, y1, x1 = max(0, y0), max(0, x0), min(rows - 1, y1), min(columns - 1, x1)
    return (y0, x0, y1, x1) if y0 <= y1 and x0 <= x1 else None


def _box_plane(candidate: Candidate, shape: tuple[int, int, int]) -> Callable[[int], np.ndarray | None]:
    boxes = dict(candidate.slice_boxes)
    bbox = _whole(candidate.bbox, 6) if not boxes else None
    if bbox is not None:
        z0, y0, x0, z1, y1, x1 = bbox
        boxes = {z: (y0, x0, y1, x1) for z in range(max(z0, 0), min(z1, shape[0] - 1) + 1)}

    def plane(z: int) -> np.ndarray | None:
        box = boxes.get(z)
        cut = box_on_plane(box, shape[1], shape[2]) if box is not None else None
        if cut is None:
            return None
        y0, x0, y1, x1 = cut
        out = np.zeros(shape[1:], bool)
        out[y0 : y1 + 1, x0 : x1 + 1] = True
        return out

    return plane


def _anatomy_specs(findings: Findings, volume: Volume, uid_root: str | None) -> list[SegmentSpec]:
    shape = tuple(volume.shape)
    lung_labels = findings.lung_labels
    chest = "lung_volume_ml" in findings.measurements
    anatomy = codes.cid7150.AnatomicalStructure
    specs: list[SegmentSpec] = []
    if lung_labels is not None and tuple(lung_labels.shape) == shape:
        for value, side in ((RIGHT, "right"), (LEFT, "left")):
            specs.append(
                SegmentSpec(
                    label=f"{side} lung",
                    description=f"{side} lung, automatic ({MODEL_OUTPUT_NOTE})",
                    category=anatomy,
                    property_type=codes.SCT.Lung,
                    laterality=LATERALITY[side],
                    plane=_label_plane(lung_labels, value),
                    structure=f"{side} lung",
                    tracking_uid=new_uid(uid_root),
                )
            )
    elif (
        findings.roi_mask is not None
        and tuple(findings.roi_mask.shape) == shape
        and (chest or findings.region == "head")
    ):
        lungs = chest
        specs.append(
            SegmentSpec(
                label="lungs" if lungs else "brain",
                description=f"{'lungs' if lungs else 'brain'}, automatic ({MODEL_OUTPUT_NOTE})",
                category=anatomy,
                property_type=codes.SCT.Lung if lungs else codes.SCT.Brain,
                plane=_label_plane(findings.roi_mask, None),
                structure="lungs" if lungs else "brain",
                tracking_uid=new_uid(uid_root),
            )
        )
    return specs


def segment_specs(findings: Findings, volume: Volume, *, uid_root: str | None = None) -> list[SegmentSpec]:
    """The segments of ``findings`` (module docs), before numbering; anatomy first, then the candidates.

    Example:
        >>> from ctlens.core.volume import Volume
        >>> f = Findings(candidates=[Candidate(kind="nodule", side="left", slice_boxes={1: (0, 0, 1, 1)})])
        >>> [s.label for s in segment_specs(f, Volume(np.zeros((2, 4, 4))))]
        ['candidate 1 (nodule, left)']
    """
    specs = _anatomy_specs(findings, volume, uid_root)
    site = codes.SCT.Lung if "lung_volume_ml" in findings.measurements else None
    site = codes.SCT.Brain if findings.region == "head" else site
    if len(findings.candidates) > MAX_CANDIDATE_SEGMENTS:
        log.warning(
            "%d candidates: only the first %d get a SEG segment (the SR reports all)",
            len(findings.candidates),
            MAX_CANDIDATE_SEGMENTS,
        )
    for i, cand in enumerate(findings.candidates[:MAX_CANDIDATE_SEGMENTS]):
        specs.append(
            SegmentSpec(
                label=candidate_label(i + 1, cand),
                description=f"bounding region of candidate {i + 1}; {MODEL_OUTPUT_NOTE}",
                category=codes.cid7150.MorphologicallyAbnormalStructure,
                property_type=FINDING_TYPES.get(cand.kind, codes.SCT.Lesion),
                plane=_box_plane(cand, tuple(volume.shape)),
                structure="candidate",
                tracking_uid=new_uid(uid_root),
                candidate=i,
                anatomic_region=site,
                laterality=LATERALITY.get(cand.side) if site is not None else None,
                colour=_CANDIDATE_COLOUR,
            )
        )
    return specs


def _description(spec: SegmentSpec, number: int) -> hd.seg.SegmentDescription:
    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=spec.label,
        segmented_property_category=spec.category,
        segmented_property_type=spec.property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification(),
        tracking_uid=spec.tracking_uid,
        tracking_id=spec.tracking_id,
        anatomic_regions=[spec.anatomic_region] if spec.anatomic_region is not None else None,
        display_color=hd.color.CIELabColor.from_rgb(*spec.colour),
    )
    desc.SegmentDescription = spec.description
    if spec.laterality is not None:
        modifier = [hd.sr.CodedConcept.from_code(spec.laterality)]
        if spec.structure == "candidate":
            desc.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = modifier
        else:
            desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = modifier
    return desc


def build_segmentation(
    findings: Findings,
    volume: Volume,
    series: SourceSeries,
    *,
    uid_root: str | None = None,
    series_number: int = SEG_SERIES_NUMBER,
) -> tuple[hd.seg.Segmentation | None, list[SegmentSpec]]:
    """The binary SEG of ``findings`` on ``series``' geometry, and its segments (numbered, non-empty only).

    Returns ``(None, [])`` when there is nothing to segment (no lungs / brain and no candidate pixels on any
    source instance); the caller says so.

    Example:
        >>> seg, segments = build_segmentation(findings, volume, series, uid_root="1.2.3.4")  # doctest: +SKIP
    """
    kept: list[SegmentSpec] = []
    stacks: list[np.ndarray] = []
    for spec in segment_specs(findings, volume, uid_root=uid_root):
        frames = series.frames(spec.plane)
        if not frames.any():
            log.info("segment %r has no pixels on the source instances: left out", spec.label)
            continue
        spec.number = len(kept) + 1
        spec.frames = [i for i in range(len(frames)) if frames[i].any()]
        kept.append(spec)
        stacks.append(frames)
    if not kept:
        log.warning("nothing to segment (no lung / brain mask, no candidate on a source instance): no SEG")
        return None, []
    pixels = np.stack(stacks, axis=-1)
    del stacks
    with quiet_person_names():
        seg = hd.seg.Segmentation(
            source_images=series.datasets,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_description(spec, spec.number) for spec in kept],
            series_instance_uid=new_uid(uid_root),
            series_number=series_number,
            sop_instance_uid=new_uid(uid_root),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=__version__,
            device_serial_number=f"{MANUFACTURER}-{__version__}",
            content_label="CTLENS",
            content_description="ctlens lungs and candidate regions, model output",
            omit_empty_frames=True,
        )
    seg.SeriesDescription = f"ctlens segmentation ({MODEL_OUTPUT_NOTE})"
    return seg, kept
