"""Results the service sends back to the archive lie on the source pixels, whatever the source's storage order.

The service keeps and analyses the display-ordered volume (anterior up, patient left on image right); the SEG,
SR and SC it sends back by STOW-RS must refer to the source instances as the archive holds them. A chest phantom
with a nodule in the left lung is written as DICOM stored prone (rows and columns reversed), feet first with
rows reversed, and as a coronal stack, put into a real Orthanc over its REST API, analysed from the archive by
the real service on loopback and sent back; the SEG, SR and SC are then fetched from Orthanc and checked against
the source pixels themselves: the nodule segment covers the nodule's soft tissue at its true patient position,
the "left lung" lies on the patient's left (LPS +x), the SR's candidate refers to the source images the nodule is
on, and the SC's candidate box surrounds the nodule on its source image. A mirrored or refused result fails.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from dicom_results_checks import frame_sources, segment_labels, sr_groups, write_volume_series
from live_server import service_settings, start_server

from ctlens.analysis.phantoms import chest_phantom
from ctlens.connect.results import in_source_order
from ctlens.connect.secondary_capture import orientation_letters
from ctlens.core.volume import Volume
from ctlens.io.loader import load
from ctlens.preprocess.display import to_display
from ctlens.preprocess.orientation import reorient

ALL_ORDERS = ["".join(p) for p in itertools.product("LR", "PA", "SI") for p in itertools.permutations(p)]
"""Every storage order of three patient axes (48), NIfTI order."""
STORAGE = {"prone": "RAS", "feet_first_rows_flipped": "LAI", "coronal": "LSP", "head_first_supine": "LPS"}
"""NIfTI-order codes the phantom is stored in (the phantom itself is in display order, 'LPS')."""


@pytest.fixture(scope="module")
def service(orthanc, tmp_path_factory):
    srv = start_server(service_settings(tmp_path_factory.mktemp("svc-orient"), dicomweb_url=orthanc.dicomweb))
    yield srv
    srv.stop()


def _plane_geometry(ds: pydicom.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """LPS position (rows, columns, 3) of every pixel of a plane, from its own header."""
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    row = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
    col = np.array([float(v) for v in ds.ImageOrientationPatient[3:]])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    r, c = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
    return ipp + r[..., None] * dr * col + c[..., None] * dc * row, np.cross(row, col)


def _source_planes(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray, pydicom.Dataset]]:
    """SOP UID -> (HU pixels, LPS position of every pixel, header)."""
    out = {}
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        out[str(ds.SOPInstanceUID)] = (hu, _plane_geometry(ds)[0], ds)
    return out


def _from_orthanc(orthanc, sop_uid: str) -> bytes:
    """The file Orthanc holds under ``sop_uid`` (its REST lookup and file download)."""
    found = httpx.post(f"{orthanc.url}/tools/lookup", content=sop_uid, timeout=30).json()
    (instance,) = [f for f in found if f["Type"] == "Instance"]
    return orthanc.rest(f"/instances/{instance['ID']}/file").content


def _image_refs(items) -> set[str]:
    """Referenced SOP Instance UIDs of the IMAGE content items anywhere below ``items``."""
    out: set[str] = set()
    for item in items:
        if str(item.get("ValueType", "")) == "IMAGE":
            out.add(str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
        if "ContentSequence" in item:
            out |= _image_refs(item.ContentSequence)
    return out


def _sr_candidate_sources(sr: pydicom.Dataset, label: str) -> set[str]:
    """The source images the SR's measurement group ``label`` (tracking identifier) refers to."""

    def groups(items):
        for item in items:
            texts = [str(c.get("TextValue", "")) for c in item.get("ContentSequence", [])]
            if label in texts:
                yield item
            yield from groups(item.get("ContentSequence", []))

    (group,) = list(groups(sr.ContentSequence))
    return _image_refs(group.ContentSequence)


@pytest.mark.parametrize("name", list(STORAGE))
def test_results_sent_back_lie_on_the_source_anatomy(name: str, orthanc, service, tmp_path) -> None:
    import highdicom as hd

    phantom, truth = chest_phantom(nodule_radius_mm=9.0)
    stored = reorient(phantom, STORAGE[name])
    write_volume_series(stored, tmp_path / "s")
    planes = _source_planes(tmp_path / "s")
    study_uid = str(next(iter(planes.values()))[2].StudyInstanceUID)
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        for path in sorted((tmp_path / "s").glob("*.dcm")):
            client.post("/instances", content=path.read_bytes()).raise_for_status()

    api = service.client()
    analysed = api.post(f"/api/archive/studies/{study_uid}/analyze", json={})
    assert analysed.status_code == 200, analysed.text
    sent = api.post(f"/api/studies/{analysed.json()['id']}/archive", json={"heatmap": True})
    assert sent.status_code == 200, sent.text
    by_modality = {o["modality"]: o["sop_instance_uid"] for o in sent.json()["stored"]}
    assert set(by_modality) == {"SEG", "SR", "OT"}, by_modality
    seg_bytes = _from_orthanc(orthanc, by_modality["SEG"])
    seg = pydicom.dcmread(io.BytesIO(seg_bytes))
    sr = pydicom.dcmread(io.BytesIO(_from_orthanc(orthanc, by_modality["SR"])))
    sc = pydicom.dcmread(io.BytesIO(_from_orthanc(orthanc, by_modality["OT"])))

    # The nodule's true patient position (LPS mm) and the phantom's midline.
    nodule_lps = phantom.world(truth["nodule_voxel"])
    centre_x = float(phantom.world((0, 0, (phantom.shape[2] - 1) / 2))[0])

    # SEG: every frame on a source instance at that instance's position; segments on the source anatomy.
    for sop, ipp, _ in frame_sources(seg):
        assert np.allclose(ipp, [float(v) for v in planes[sop][2].ImagePositionPatient], atol=1e-3)
    labels = segment_labels(seg)
    seg_read = hd.seg.segread(io.BytesIO(seg_bytes))
    sops = sorted({sop for sop, _, _ in frame_sources(seg)})
    pixels = seg_read.get_pixels_by_source_instance(
        source_sop_instance_uids=sops, segment_numbers=list(labels.values())
    )
    hu_of: dict[str, list] = {label: [] for label in labels}
    lps_of: dict[str, list] = {label: [] for label in labels}
    on_sop: dict[str, set[str]] = {label: set() for label in labels}
    for i, sop in enumerate(sops):
        hu, lps, _ = planes[sop]
        for j, label in enumerate(labels):
            mask = pixels[i, :, :, j].astype(bool)
            hu_of[label].append(hu[mask])
            lps_of[label].append(lps[mask])
            if mask.any():
                on_sop[label].add(sop)
    hu_all = {label: np.concatenate(parts) for label, parts in hu_of.items()}
    lps_all = {label: np.concatenate(parts) for label, parts in lps_of.items()}
    nodule = next(label for label in labels if label.startswith("candidate 1"))
    assert "left" in nodule
    assert np.median(lps_all["left lung"][:, 0]) > centre_x > np.median(lps_all["right lung"][:, 0])
    assert np.median(hu_all["left lung"]) < -700 and np.median(hu_all["right lung"]) < -700
    assert np.mean(hu_all[nodule] > -300) > 0.3, "the nodule segment must cover the nodule's soft tissue"
    soft = lps_all[nodule][hu_all[nodule] > -300]
    assert np.linalg.norm(soft.mean(axis=0) - nodule_lps) < 6.0, (soft.mean(axis=0), nodule_lps)

    # SR: the candidate's group refers to its SEG segment and to the source images that segment is on,
    # every one of them within the candidate's extent of the true nodule.
    groups = sr_groups(sr)
    assert groups[nodule]["segment"] == labels[nodule]
    assert ("Lung", "Left") in groups[nodule]["sites"]
    assert groups["left lung"]["sites"] == [("Lung", "Left")]
    refs = _sr_candidate_sources(sr, nodule)
    assert str(seg.SOPInstanceUID) in refs  # the segmentation itself, then its source images
    refs -= {str(seg.SOPInstanceUID)}
    assert refs == on_sop[nodule], (sorted(refs), sorted(on_sop[nodule]))
    for sop in refs:
        ipp = np.array([float(v) for v in planes[sop][2].ImagePositionPatient])
        normal = _plane_geometry(planes[sop][2])[1]
        assert abs(float((nodule_lps - ipp) @ normal)) < 20.0, sop

    # SC: on a source instance's own pixel grid, with its orientation letters; the candidate's yellow box
    # surrounds the nodule on that image.
    (source_ref,) = sc.SourceImageSequence
    ref = planes[str(source_ref.ReferencedSOPInstanceUID)][2]
    assert (sc.Rows, sc.Columns) == (ref.Rows, ref.Columns)
    iop = [float(v) for v in ref.ImageOrientationPatient]
    assert list(sc.PatientOrientation) == [
        orientation_letters(np.array(iop[:3])),
        orientation_letters(np.array(iop[3:])),
    ]
    lps = _plane_geometry(ref)[0]
    rgb = sc.pixel_array.astype(int)
    yellow = (rgb[..., 0] > 200) & (rgb[..., 1] > 200) & (rgb[..., 2] < 60)
    assert yellow.any(), "the SC shows the candidate's box"
    ys, xs = np.nonzero(yellow)
    hu = planes[str(ref.SOPInstanceUID)][0]
    inside = hu[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert np.mean(inside > -300) > 0.2, "the box drawn on the source image surrounds soft tissue (the nodule)"
    box_centre = lps[(ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2]
    normal = _plane_geometry(ref)[1]
    in_plane = (box_centre - nodule_lps) - ((box_centre - nodule_lps) @ normal) * normal
    assert np.linalg.norm(in_plane) < 8.0, (box_centre, nodule_lps)


# --- the entry point itself: the display copy back on the source grid, for every storage order ---------------
def _small_volume(codes: str, direction: np.ndarray | None = None) -> Volume:
    """A volume with distinct sizes and spacings on each axis (so any wrong transpose shows), stored as ``codes``."""
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) * 3 - 200
    base = Volume(array, spacing=(2.5, 1.5, 1.0), origin=(-3.0, 7.0, 11.0))
    if direction is not None:
        base = Volume(array, spacing=base.spacing, origin=base.origin, direction=direction)
    return reorient(base, codes)


@pytest.mark.parametrize("codes", ALL_ORDERS)
def test_display_copy_goes_back_to_the_readers_grid_for_every_storage_order(codes: str, tmp_path) -> None:
    write_volume_series(_small_volume(codes), tmp_path / "s", descending=True, seed=len(codes))
    read = load(tmp_path / "s")
    back = in_source_order(to_display(read), tmp_path / "s")
    assert back.shape == read.shape and np.array_equal(back.array, read.array)
    assert np.allclose(back.affine, read.affine, atol=1e-6)
    assert back.meta == read.meta


def test_oblique_display_copy_goes_back_to_the_readers_grid(tmp_path) -> None:
    t = np.radians(12.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    write_volume_series(_small_volume("RAS", tilt @ np.eye(3)[:, ::-1]), tmp_path / "s")
    read = load(tmp_path / "s")
    shown = to_display(read)
    assert shown.shape != read.shape or not np.array_equal(shown.array, read.array)
    back = in_source_order(shown, tmp_path / "s")
    assert np.array_equal(back.array, read.array) and np.allclose(back.affine, read.affine, atol=1e-6)


def test_localizers_and_other_series_do_not_choose_the_order(tmp_path) -> None:
    write_volume_series(_small_volume("RAS"), tmp_path / "s")
    read = load(tmp_path / "s")
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "s").glob("*.dcm"))]
    decoys = []
    for k in range(3 * len(headers)):  # outnumber the series' planes, in an order that fits the volume's size
        for localizer in (True, False):
            ds = pydicom.Dataset()
            ds.update(headers[0])
            ds.SOPInstanceUID = f"1.2.3.{k}.{int(localizer)}"
            ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal
            ds.Rows, ds.Columns = read.shape[0], read.shape[1]
            if localizer:
                ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
            else:
                ds.SeriesInstanceUID = "1.2.3.999"  # another series of the study
            decoys.append(ds)
    shown = to_display(read)
    meta = {k: v for k, v in shown.meta.items() if k != "source_sop_uids"}  # also without the planes read
    for copy in (shown, Volume(shown.array, shown.spacing, shown.origin, shown.direction, "CT", meta)):
        back = in_source_order(copy, [*decoys, *headers])
        assert np.array_equal(back.array, read.array) and np.allclose(back.affine, read.affine, atol=1e-6)
    assert in_source_order(read, headers) is read  # already in the source's order: the same object
    unrelated = [ds for ds in decoys if ds.SeriesInstanceUID == "1.2.3.999"]
    assert in_source_order(shown, unrelated) is shown  # no plane of the analysed series: unchanged
