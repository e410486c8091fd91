"""The heatmap overlay on the most relevant slice as a DICOM Secondary Capture (RGB, no burned-in text).

The slice is the top candidate's centre slice (else the slice with the most heat) among those with a source
instance; the image is that source instance's pixel grid (same rows, columns and orientation, so a viewer shows
it like the source image): the volume slice in the region's CT window, the heatmap blended in red / yellow
(alpha proportional to the value, as :mod:`ctlens.analysis.overlays`) and each candidate's in-plane box outlined
in yellow. It references the source instance and says it is model output.

Example:
    >>> sc = build_secondary_capture(findings, volume, series)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from ctlens.analysis.findings import Findings
from ctlens.connect.dicom_identity import MANUFACTURER, MODEL_OUTPUT_NOTE, new_uid, quiet_person_names
from ctlens.connect.seg import box_on_plane
from ctlens.connect.source_instances import SourceInstance, SourceSeries, shift_plane
from ctlens.core.volume import Volume
from ctlens.preprocess.windows import to_display_uint8, window_limits

__all__ = ["SC_SERIES_NUMBER", "build_secondary_capture", "orientation_letters"]

log = logging.getLogger("ctlens.connect")

SC_SERIES_NUMBER = 9903
_REGION_WINDOWS = {"chest": "lung", "head": "brain"}
_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))


def orientation_letters(cosine: np.ndarray) -> str:
    """Patient Orientation letters of an LPS direction, strongest axis first (DICOM PS3.3 C.7.6.1.1.1).

    Example:
        >>> orientation_letters(np.array([1.0, 0, 0])), orientation_letters(np.array([0, 0.6, -0.8]))
        ('L', 'FP')
    """
    v = np.asarray(cosine, dtype=np.float64)
    order = np.argsort(-np.abs(v), kind="stable")
    return "".join(_LETTERS[a][int(v[a] > 0)] for a in order if abs(v[a]) > 0.25) or "L"


def _pick(findings: Findings, series: SourceSeries) -> SourceInstance | None:
    available = set(series.slice_indices)
    for cand in findings.candidates[:1]:
        centre = float(cand.centre_voxel[0]) if cand.centre_voxel else math.nan
        z = int(round(centre)) if math.isfinite(centre) else None
        if z in available:
            return series.nearest_instance(z)
    heat = findings.heatmap
    if heat is None:
        return None
    sums = {z: float(np.nansum(heat[z])) for z in available}
    return series.nearest_instance(max(sums, key=sums.get)) if sums else None


def _overlay(findings: Findings, volume: Volume, inst: SourceInstance) -> np.ndarray:
    z = inst.slice_index
    hu = volume.array[z].astype(np.float32)
    if volume.modality == "CT":
        gray = to_display_uint8(hu, *window_limits(_REGION_WINDOWS.get(findings.region, "soft_tissue")))
    else:
        lo, hi = np.percentile(hu[np.isfinite(hu)], [1, 99]) if np.isfinite(hu).any() else (0.0, 1.0)
        gray = to_display_uint8(hu, float(lo), float(hi))
    rgb = np.repeat(gray[..., None].astype(np.float32), 3, axis=-1)
    heat = np.clip(np.nan_to_num(findings.heatmap[z].astype(np.float32)), 0, 1)[..., None]  # type: ignore[index]
    colour = np.concatenate([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1) * 255
    alpha = 0.6 * heat
    rgb = rgb * (1 - alpha) + colour * alpha
    rows, cols = gray.shape
    for cand in findings.candidates:
        box = cand.slice_boxes.get(z)
        cut = box_on_plane(box, rows, cols, margin=2) if box is not None else None
        if cut is None:  # no box here, or one that is not finite or lies outside the image
            continue
        y0, x0, y1, x1 = cut
        rgb[[y0, y1], x0 : x1 + 1] = (255, 255, 0)
        rgb[y0 : y1 + 1, [x0, x1]] = (255, 255, 0)
    out = rgb.clip(0, 255).astype(np.uint8)
    return np.stack([shift_plane(out[..., c], inst.shift) for c in range(3)], axis=-1) if inst.shift != (0, 0) else out


def build_secondary_capture(
    findings: Findings,
    volume: Volume,
    series: SourceSeries,
    *,
    uid_root: str | None = None,
    series_number: int = SC_SERIES_NUMBER,
) -> hd.sc.SCImage | None:
    """The heatmap overlay SC (module docs), or ``None`` when the findings have no heatmap on the volume's grid."""
    if findings.heatmap is None or tuple(findings.heatmap.shape) != tuple(volume.shape):
        log.warning("no heatmap on the volume's grid: no Secondary Capture")
        return None
    inst = _pick(findings, series)
    if inst is None:
        return None
    ref: Dataset = inst.dataset
    iop = [float(v) for v in ref.ImageOrientationPatient]
    with quiet_person_names():
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ref,
            pixel_array=_overlay(findings, volume, inst),
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=new_uid(uid_root),
            series_number=series_number,
            sop_instance_uid=new_uid(uid_root),
            instance_number=1,
            manufacturer=MANUFACTURER,
            pixel_spacing=tuple(float(v) for v in ref.PixelSpacing),
            patient_orientation=(orientation_letters(np.array(iop[:3])), orientation_letters(np.array(iop[3:]))),
        )
    sc.SeriesDescription = f"ctlens heatmap ({MODEL_OUTPUT_NOTE})"
    sc.ImageComments = f"heatmap and candidate boxes on slice {inst.slice_index}; {MODEL_OUTPUT_NOTE}"
    sc.BurnedInAnnotation = "NO"
    sc.Laterality = ""  # General Series type 2C: the slice shows both sides of the body, so unknown / empty
    sc.DerivationDescription = "ctlens analysis heatmap blended over the source image"
    source = Dataset()
    source.ReferencedSOPClassUID = ref.SOPClassUID
    source.ReferencedSOPInstanceUID = ref.SOPInstanceUID
    sc.SourceImageSequence = [source]
    return sc
