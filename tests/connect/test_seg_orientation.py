"""DICOM results of series stored in other orders: the SEG must lie on the anatomy of the source pixels.

The analysis works on the display grid (anterior up, patient left on image right); SEG frames and boxes go back
to the stored grid of each source instance. A chest phantom with a nodule in the left lung is written as DICOM
prone (rows and columns reversed), feet first in storage, and as a coronal stack, then analysed as a user would;
each SEG segment is checked against the source pixels themselves: the nodule segment covers soft tissue, the
"left lung" segment lies on the patient's left (LPS +x) and the "right lung" on the right. A mirrored SEG fails.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_results_checks import frame_sources, segment_labels, write_volume_series

from ctlens.analysis.analyze import analyze, load_for_analysis
from ctlens.analysis.phantoms import chest_phantom
from ctlens.connect.results import write_dicom_results
from ctlens.preprocess.orientation import reorient

STORAGE = {"prone": "RAS", "feet_first_rows_flipped": "LAI", "coronal": "LSP"}
"""NIfTI-order codes the phantom is stored in (the phantom itself is in display order, 'LPS')."""


def _source_planes(folder) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """SOP UID -> (HU pixels, LPS x of every pixel)."""
    out = {}
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        row, col = (
            np.array([float(v) for v in ds.ImageOrientationPatient[:3]]),
            np.array([float(v) for v in ds.ImageOrientationPatient[3:]]),
        )
        dr, dc = (float(v) for v in ds.PixelSpacing)
        r, c = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
        world_x = ipp[0] + row[0] * c * dc + col[0] * r * dr
        out[str(ds.SOPInstanceUID)] = (hu, world_x)
    return out


@pytest.mark.parametrize("name", list(STORAGE))
def test_seg_segments_lie_on_the_source_anatomy(name: str, tmp_path) -> None:
    import highdicom as hd

    phantom, truth = chest_phantom(nodule_radius_mm=9.0)
    stored = reorient(phantom, STORAGE[name])
    assert stored.array.shape != phantom.array.shape or not np.array_equal(stored.array, phantom.array)
    write_volume_series(stored, tmp_path / "s")
    volume = load_for_analysis(tmp_path / "s")
    findings = analyze(volume)
    assert findings.candidates and findings.lung_labels is not None
    paths = write_dicom_results(findings, volume, tmp_path / "s", tmp_path / "out")
    seg = hd.seg.segread(paths[0])
    labels = segment_labels(seg)
    planes = _source_planes(tmp_path / "s")
    sops = sorted({sop for sop, _, _ in frame_sources(seg)})
    numbers = list(labels.values())
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=sops, segment_numbers=numbers)
    masks = {label: [] for label in labels}
    for i, sop in enumerate(sops):
        hu, world_x = planes[sop]
        for j, label in enumerate(labels):
            mask = pixels[i, :, :, j].astype(bool)
            masks[label].append((hu[mask], world_x[mask]))
    hu_of = {label: np.concatenate([h for h, _ in parts]) for label, parts in masks.items()}
    x_of = {label: np.concatenate([x for _, x in parts]) for label, parts in masks.items()}
    nodule = next(label for label in labels if label.startswith("candidate 1"))
    assert "left" in nodule
    centre_x = float(phantom.world((0, 0, (phantom.shape[2] - 1) / 2))[0])
    assert np.median(x_of["left lung"]) > centre_x > np.median(x_of["right lung"])  # LPS: +x is patient left
    assert np.median(x_of[nodule]) > centre_x
    assert np.median(hu_of["left lung"]) < -700 and np.median(hu_of["right lung"]) < -700
    assert np.mean(hu_of[nodule] > -300) > 0.3, "the nodule segment must cover the nodule's soft tissue"
