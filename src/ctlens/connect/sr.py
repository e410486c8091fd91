"""Findings as a TID 1500 Measurement Report (Comprehensive 3D SR), referencing the SEG segments.

Measurement groups:

* one per lung / brain segment ("right lung", "left lung", "lungs", "brain"): volumetric ROI groups that
  reference the SEG segment (same tracking ID and UID), with the volume of that structure;
* "lungs" (a TID 1501 group when there is no one "lungs" segment to reference) with the lung measurements of
  ``Findings.measurements``: volume, LAA-950 %, mean lung density, PD15, voxel count; "body region" with the
  fraction of slices per body region (``region_coverage``); "ctlens measurements" with the number of candidates
  and any other numeric measurement (so a report always has at least one group);
* one per candidate, with its tracking ID (its SEG label, e.g. "candidate 1 (mass, right)") and UID, finding
  type (SCT Nodule / Mass / Lesion), finding site (lung or brain, with laterality), and the measurements
  diameter (mm), volume (mL), mean attenuation (HU) and score (no unit; the concept says "model output, not a
  diagnosis"); it references the candidate's SEG segment (a TID 1501 group when the candidate has none).

Every group carries the ctlens algorithm identification. Values are the findings' numbers as they are (a DS
holds them exactly; highdicom adds a FloatingPointValue when a DS cannot); a value that is not a finite number
(NaN, infinity) is left out, as DICOM numbers cannot hold it. Quantities without a standard
concept use the private coding scheme ``99CTLENS``, declared in the Coding Scheme Identification Sequence.

Example:
    >>> report = build_measurement_report(findings, series, seg, segments)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ctlens.analysis.findings import Candidate, Findings
from ctlens.connect.dicom_identity import (
    MANUFACTURER,
    MODEL_NAME,
    MODEL_OUTPUT_NOTE,
    device_uid,
    new_uid,
    quiet_person_names,
    sr_algorithm_id,
)
from ctlens.connect.seg import FINDING_TYPES, LATERALITY, SegmentSpec, candidate_label
from ctlens.connect.source_instances import SourceSeries

__all__ = ["PRIVATE_SCHEME", "SR_SERIES_NUMBER", "QuantitySpec", "build_measurement_report", "quantity_for"]

SR_SERIES_NUMBER = 9902
PRIVATE_SCHEME = "99CTLENS"
ML = Code("mL", "UCUM", "milliliter")
SCORE = Code("SCORE", PRIVATE_SCHEME, f"candidate score ({MODEL_OUTPUT_NOTE})")
CANDIDATE_COUNT = Code("CANDIDATES", PRIVATE_SCHEME, "number of candidates (model output)")
_GROUP_NAMES = ("right lung", "left lung", "lungs", "brain", "body region")
_PROCEDURES = {
    "chest": Code("24627-2", "LN", "CT Chest"),
    "head": Code("24725-4", "LN", "CT Head"),
}


@dataclass(frozen=True)
class QuantitySpec:
    """How one ``Findings.measurements`` key is reported: concept, unit, derivation and the group it belongs to."""

    name: Code
    unit: Code
    group: str
    derivation: Code | None = None


_KNOWN = {
    "lung_volume_ml": QuantitySpec(codes.SCT.Volume, ML, "lungs"),
    "right_lung_volume_ml": QuantitySpec(codes.SCT.Volume, ML, "right lung"),
    "left_lung_volume_ml": QuantitySpec(codes.SCT.Volume, ML, "left lung"),
    "laa950_percent": QuantitySpec(
        Code("LAA950", PRIVATE_SCHEME, "lung volume below -950 HU (LAA-950)"), codes.UCUM.Percent, "lungs"
    ),
    "mean_lung_density_hu": QuantitySpec(
        codes.DCM.AttenuationCoefficient, codes.UCUM.HounsfieldUnit, "lungs", codes.SCT.Mean
    ),
    "pd15_hu": QuantitySpec(
        Code("PD15", PRIVATE_SCHEME, "15th percentile of lung density (PD15)"), codes.UCUM.HounsfieldUnit, "lungs"
    ),
    "lung_voxels": QuantitySpec(
        Code("VOXELS", PRIVATE_SCHEME, "number of voxels"), Code("{voxels}", "UCUM", "voxels"), "lungs"
    ),
    "brain_volume_ml": QuantitySpec(codes.SCT.Volume, ML, "brain"),
}
_SUFFIX_UNITS = (
    ("_ml", ML),
    ("_mm", codes.UCUM.Millimeter),
    ("_hu", codes.UCUM.HounsfieldUnit),
    ("_percent", codes.UCUM.Percent),
)


def quantity_for(key: str) -> QuantitySpec:
    """The concept and unit for a measurement key: a standard one when known, else ``99CTLENS`` named by the key.

    Example:
        >>> quantity_for("lung_volume_ml").name.meaning, quantity_for("lung_volume_ml").unit.value
        ('Volume', 'mL')
        >>> q = quantity_for("hyperdense_components"); q.name.scheme_designator, q.unit.value, q.group
        ('99CTLENS', '1', 'measurements')
        >>> quantity_for("region_coverage.chest").name.meaning
        'fraction of slices showing the chest'

    """
    if key in _KNOWN:
        return _KNOWN[key]
    if key.startswith("region_coverage."):
        region = key.split(".", 1)[1]
        name = Code(f"COVERAGE_{region.upper()}", PRIVATE_SCHEME, f"fraction of slices showing the {region}"[:64])
        return QuantitySpec(name, codes.UCUM.NoUnits, "body region")
    unit = next((u for suffix, u in _SUFFIX_UNITS if key.endswith(suffix)), codes.UCUM.NoUnits)
    name = Code(key.upper().replace(".", "_"), PRIVATE_SCHEME, key.replace("_", " ")[:64])
    return QuantitySpec(name, unit, "measurements")


def _number(value: object) -> float | None:
    """``value`` as a float when it is a finite number, else None (bools, text, NaN and infinities are left out).

    Example:
        >>> _number(3), _number(float("nan")), _number(float("-inf")), _number(True), _number(10**400)
        (3.0, None, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers are Real too
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _measurement(name: Code, value: float, unit: Code, derivation: Code | None = None) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=value, unit=unit, derivation=derivation)


def _site(findings: Findings, side: str) -> list[hd.sr.FindingSite]:
    if "lung_volume_ml" in findings.measurements:
        return [hd.sr.FindingSite(codes.SCT.Lung, laterality=LATERALITY.get(side))]
    if findings.region == "head":
        return [hd.sr.FindingSite(codes.SCT.Brain)]
    return []


def _referenced_segment(seg: Dataset, spec: SegmentSpec, series: SourceSeries) -> hd.sr.ReferencedSegment:
    """The SEG segment and the source instances it has frames on (built here: highdicom's ``from_segmentation``
    fails on a one-segment SEG, whose segment identification is in the shared functional groups)."""
    sources = [series.instances[i].dataset for i in spec.frames]
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=spec.number,
        source_images=[hd.sr.SourceImageForSegmentation(ds.SOPClassUID, ds.SOPInstanceUID) for ds in sources],
    )


def _candidate_group(
    findings: Findings,
    rank: int,
    cand: Candidate,
    spec: SegmentSpec | None,
    seg: Dataset | None,
    series: SourceSeries,
    uid_root: str | None,
):
    quantities = [
        (codes.SCT.Diameter, cand.diameter_mm, codes.UCUM.Millimeter, None),
        (codes.SCT.Volume, cand.volume_ml, ML, None),
        (codes.DCM.AttenuationCoefficient, cand.mean_hu, codes.UCUM.HounsfieldUnit, codes.SCT.Mean),
        (SCORE, cand.score, codes.UCUM.NoUnits, None),
    ]
    measurements = [
        _measurement(concept, number, unit, derivation)
        for concept, value, unit, derivation in quantities
        if (number := _number(value)) is not None
    ]
    tracking = hd.sr.TrackingIdentifier(
        uid=spec.tracking_uid if spec is not None else new_uid(uid_root), identifier=candidate_label(rank, cand)
    )
    common = {
        "tracking_identifier": tracking,
        "finding_type": FINDING_TYPES.get(cand.kind, codes.SCT.Lesion),
        "algorithm_id": sr_algorithm_id(),
        "finding_sites": _site(findings, cand.side) or None,
        "measurements": measurements or None,
    }
    if spec is not None and seg is not None:
        segment = _referenced_segment(seg, spec, series)
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment, **common)
    return hd.sr.MeasurementsAndQualitativeEvaluations(**common)


def _anatomy_groups(
    findings: Findings, segments: list[SegmentSpec], seg: Dataset | None, series: SourceSeries, uid_root: str | None
) -> list:
    by_group: dict[str, list[hd.sr.Measurement]] = {}
    flat: list[tuple[str, object]] = []
    for key, value in findings.measurements.items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        flat.extend((f"{key}.{sub}" if sub else key, v) for sub, v in items)
    for key, value in flat:
        number = _number(value)
        if number is None:
            continue
        q = quantity_for(key)
        by_group.setdefault(q.group, []).append(_measurement(q.name, number, q.unit, q.derivation))
    by_group.setdefault("measurements", []).append(
        _measurement(CANDIDATE_COUNT, float(len(findings.candidates)), codes.UCUM.NoUnits)
    )
    groups = []
    anatomy = {s.structure: s for s in segments if s.candidate is None}
    for structure, spec in anatomy.items():
        if seg is None:
            break
        side = structure.split()[0] if structure.endswith(" lung") else ""
        site = codes.SCT.Brain if structure == "brain" else codes.SCT.Lung
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=spec.tracking_uid, identifier=spec.tracking_id),
                referenced_segment=_referenced_segment(seg, spec, series),
                finding_type=site,
                finding_sites=[hd.sr.FindingSite(site, laterality=LATERALITY.get(side))],
                algorithm_id=sr_algorithm_id(),
                measurements=by_group.pop(structure, None),
            )
        )
    for name in [g for g in (*_GROUP_NAMES, "measurements") if g in by_group]:
        site = {"brain": codes.SCT.Brain, "body region": None, "measurements": None}.get(name, codes.SCT.Lung)
        side = name.split()[0] if name.endswith(" lung") else ""
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=new_uid(uid_root), identifier=name if name != "measurements" else "ctlens measurements"
                ),
                finding_type=site,
                finding_sites=[hd.sr.FindingSite(site, laterality=LATERALITY.get(side))] if site else None,
                algorithm_id=sr_algorithm_id(),
                measurements=by_group[name],
            )
        )
    return groups


def _procedure(findings: Findings, series: SourceSeries) -> Code:
    """The procedure reported: CT chest / head / unspecified, or MRI unspecified for an MR source series."""
    if str(series.instances[0].dataset.get("Modality", "CT")) == "MR":
        return codes.LN.MRIUnspecifiedBodyRegion
    return _PROCEDURES.get(findings.region, codes.LN.CTUnspecifiedBodyRegion)


def _coding_scheme() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "ctlens measurements"
    item.CodingSchemeResponsibleOrganization = "ctlens"
    return item


def build_measurement_report(
    findings: Findings,
    series: SourceSeries,
    seg: Dataset | None,
    segments: list[SegmentSpec],
    *,
    uid_root: str | None = None,
    series_number: int = SR_SERIES_NUMBER,
) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 report of ``findings`` (module docs); ``seg`` / ``segments`` from the SEG (None / [] if none).

    Example:
        >>> sr = build_measurement_report(findings, series, seg, segments, uid_root="1.2.3")  # doctest: +SKIP
    """
    by_candidate = {s.candidate: s for s in segments if s.candidate is not None}
    groups = _anatomy_groups(findings, segments, seg, series, uid_root)
    for i, cand in enumerate(findings.candidates):
        groups.append(_candidate_group(findings, i + 1, cand, by_candidate.get(i), seg, series, uid_root))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(), name=MODEL_NAME, manufacturer_name=MANUFACTURER, model_name=MODEL_NAME
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_procedure(findings, series),
        imaging_measurements=groups or None,
    )
    evidence = [*series.datasets, *([seg] if seg is not None else [])]
    with quiet_person_names():
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=new_uid(uid_root),
            series_number=series_number,
            sop_instance_uid=new_uid(uid_root),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
        )
    sr.SeriesDescription = f"ctlens measurements ({MODEL_OUTPUT_NOTE})"
    sr.CodingSchemeIdentificationSequence = [_coding_scheme()]
    return sr
