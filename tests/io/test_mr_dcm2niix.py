"""MR and multi-volume DICOM (#23), each case read by ctlens and by dcm2niix (PyPI) in the same test and compared.

Every case is written by mr_factory.py; ctlens must equal the factory's truth and dcm2niix's NIfTI: shape, affine
(<= 1e-3 mm, both brought to the closest canonical voxel order), voxels (exact), number of entries and volumes,
b-values.
"""

from __future__ import annotations

from pathlib import Path

import dcm2niix_peer as peer
import mr_factory as mf
import numpy as np
import pydicom
import pytest

import ctlens
from ctlens.core.volume import Volume
from ctlens.io import list_series, load_volumes

pytestmark = peer.needs_dcm2niix


def assert_truth(vol: Volume, truth: mf.VolumeTruth) -> None:
    assert vol.shape == truth.shape and np.array_equal(vol.array, truth.hu), "voxels differ from the truth"
    np.testing.assert_allclose(vol.affine, truth.affine, atol=1e-4)


def compare_all(folder: Path, out: Path, *options: str) -> dict[str, list[Volume]]:
    """Every entry of ``folder`` read by ctlens equals one dcm2niix image, volume for volume; {part: volumes}."""
    peers = peer.run_dcm2niix(folder, out, *options)
    infos = list_series(folder)
    assert len(infos) == len(peers), f"ctlens {[i.part for i in infos]} vs dcm2niix {[p.path.name for p in peers]}"
    found, read = set(), {}
    for info in infos:
        volumes = load_volumes(folder, series=info.series_id)
        assert len(volumes) == info.n_volumes
        match = peer.matching(volumes[0], peers, 0)
        assert match.n_volumes == info.n_volumes, f"{info.part}: {info.n_volumes} volumes, dcm2niix {match.n_volumes}"
        for k, vol in enumerate(volumes[1:], start=1):
            peer.assert_same(vol, match, k)
        if match.bvals is not None:
            assert volumes[0].meta["bvals"] == pytest.approx(match.bvals)
        found.add(match.path)
        read[info.part] = volumes
    assert len(found) == len(peers)
    return read


@pytest.mark.parametrize(
    "orientation, reversed_normal",
    [(mf.AXIAL, False), (mf.AXIAL, True), (mf.SAGITTAL, False), (mf.OBLIQUE, True)],
    ids=["axial", "axial-reversed-normal", "sagittal", "oblique-reversed"],
)
def test_siemens_mosaic_fmri(tmp_path: Path, orientation, reversed_normal: bool) -> None:
    truths = mf.write_mosaic_series(tmp_path / "in", 3, orientation=orientation, reversed_normal=reversed_normal)
    (info,) = list_series(tmp_path / "in")
    assert (info.n_slices, info.rows, info.columns, info.n_volumes) == (5, 8, 6, 3)
    read = compare_all(tmp_path / "in", tmp_path / "out")
    for vol, truth in zip(read[""], truths, strict=True):
        assert_truth(vol, truth)
    assert read[""][0].meta["source_sop_uids"][0] != read[""][0].meta["source_sop_uids"][1]  # one per tile


def test_siemens_mosaic_diffusion_from_csa(tmp_path: Path) -> None:
    bvalues = [0, 1000, 1000, 2000]
    directions = [(0, 0, 0), (1, 0, 0), (0, 0.6, 0.8), (0, -1, 0)]
    truths = mf.write_mosaic_series(tmp_path / "in", 4, n_slices=7, bvalues=bvalues, directions=directions)
    read = compare_all(tmp_path / "in", tmp_path / "out")
    volumes = read[""]
    assert volumes[0].meta["bvals"] == bvalues
    np.testing.assert_allclose(volumes[2].meta["diffusion_gradient"], (0, 0.6, 0.8))
    for vol, truth in zip(volumes, truths, strict=True):
        assert_truth(vol, truth)


def test_multi_echo_entries(tmp_path: Path) -> None:
    fields = [{"EchoNumbers": e + 1, "EchoTime": str(8 * (e + 1))} for e in range(3)]
    truths = mf.write_mr_series(tmp_path / "in", fields, orientation=mf.CORONAL)
    read = compare_all(tmp_path / "in", tmp_path / "out")
    assert sorted(read) == ["echo 1", "echo 2", "echo 3"]
    for e, truth in enumerate(truths):
        assert_truth(read[f"echo {e + 1}"][0], truth)
        assert_truth(ctlens.load(tmp_path / "in", series=f"echo {e + 1}"), truth)


def test_magnitude_and_phase_entries(tmp_path: Path) -> None:
    fields = [{"ImageType": ["ORIGINAL", "PRIMARY", kind, "ND"]} for kind in ("M", "P")]
    truths = mf.write_mr_series(tmp_path / "in", fields, descending=True)
    read = compare_all(tmp_path / "in", tmp_path / "out")
    assert sorted(read) == ["type magnitude", "type phase"]
    assert_truth(read["type magnitude"][0], truths[0])
    assert_truth(read["type phase"][0], truths[1])


@pytest.mark.parametrize("numbering", ["acquisition", "temporal", "times"])
@pytest.mark.parametrize("orientation", [mf.AXIAL, mf.SAGITTAL], ids=["axial", "sagittal"])
def test_time_series_is_one_4d_entry(tmp_path: Path, numbering: str, orientation) -> None:
    """fMRI: Siemens numbers each volume as an acquisition, others give temporal positions, or times only."""
    n = 4
    fields = {
        "acquisition": [{"AcquisitionNumber": v + 1} for v in range(n)],
        "temporal": [{"TemporalPositionIdentifier": v + 1, "NumberOfTemporalPositions": n} for v in range(n)],
        "times": [{} for _ in range(n)],
    }[numbering]
    truths = mf.write_mr_series(tmp_path / "in", fields, orientation=orientation, descending=numbering == "times")
    (info,) = list_series(tmp_path / "in")
    assert info.n_volumes == n and info.part == ""
    read = compare_all(tmp_path / "in", tmp_path / "out")
    for k, truth in enumerate(truths):
        assert_truth(read[""][k], truth)
        vol = ctlens.load(tmp_path / "in", volume=k)
        assert_truth(vol, truth)
        assert vol.meta["volume_index"] == k and vol.meta["n_volumes"] == n


def test_diffusion_series_bvalues(tmp_path: Path) -> None:
    table = [(0, (0, 0, 0)), (1000, (1, 0, 0)), (1000, (0, 0.6, 0.8)), (0, (0, 0, 0)), (2500, (0, 0, 1))]
    fields = [
        {"DiffusionBValue": float(b), "DiffusionGradientOrientation": list(d), "AcquisitionNumber": i + 1}
        for i, (b, d) in enumerate(table)
    ]
    truths = mf.write_mr_series(tmp_path / "in", fields, orientation=mf.OBLIQUE)
    read = compare_all(tmp_path / "in", tmp_path / "out")
    volumes = read[""]
    assert volumes[0].meta["bvals"] == [0, 1000, 1000, 0, 2500]
    assert volumes[2].meta["diffusion_bvalue"] == 1000 and volumes[2].meta["diffusion_gradient"] == [0, 0.6, 0.8]
    for vol, truth in zip(volumes, truths, strict=True):
        assert_truth(vol, truth)


@pytest.mark.parametrize("descending", [False, True], ids=["in-stack-ascending", "in-stack-descending"])
@pytest.mark.parametrize("frame_order", mf.FRAME_ORDERS)
@pytest.mark.parametrize(
    "vendor, orientation", [("philips", mf.CORONAL), ("canon", mf.OBLIQUE)], ids=["philips-coronal", "canon-oblique"]
)
def test_enhanced_multiframe_4d(tmp_path: Path, vendor: str, orientation, frame_order: str, descending: bool) -> None:
    """One enhanced file of 3 time points, frames stored in any order: the Multi-frame Dimension module decides.

    Both dimension layouts real scanners write (spatial dimensions before or after TemporalPositionIndex); every
    volume equals the truth and dcm2niix's volume of the same index, voxel for voxel.
    """
    truths = mf.write_enhanced_mr(
        tmp_path / "in" / "enhanced.dcm",
        3,
        vendor=vendor,
        orientation=orientation,
        frame_order=frame_order,
        descending=descending,
    )
    (info,) = list_series(tmp_path / "in")
    assert info.n_volumes == 3
    read = compare_all(tmp_path / "in", tmp_path / "out")
    for vol, truth in zip(read[""], truths, strict=True):
        assert_truth(vol, truth)


@pytest.mark.parametrize("frame_order", mf.FRAME_ORDERS)
@pytest.mark.parametrize("vendor", ["philips", "canon"])
def test_enhanced_multiframe_dwi_order_from_dimension_index(tmp_path: Path, vendor: str, frame_order: str) -> None:
    """A DWI enhanced file indexed by b-value rank and direction number: the dimension farther from the in-stack
    position varies slower (direction by direction), on either side of the spatial dimensions, as in dcm2niix."""
    table = [
        (0.0, (0, 0, 0)),
        (1000.0, (1, 0, 0)),
        (2000.0, (1, 0, 0)),
        (1000.0, (0, 0.6, 0.8)),
        (2000.0, (0, 0.6, 0.8)),
    ]
    truths = mf.write_enhanced_mr(
        tmp_path / "in" / "dwi.dcm", 5, vendor=vendor, frame_order=frame_order, diffusion=table, orientation=mf.OBLIQUE
    )
    read = compare_all(tmp_path / "in", tmp_path / "out")
    volumes = read[""]
    assert volumes[0].meta["bvals"] == [b for b, _ in table]
    for vol, truth, (_, direction) in zip(volumes, truths, table, strict=True):
        assert_truth(vol, truth)
        np.testing.assert_allclose(vol.meta["diffusion_gradient"], direction)


def test_enhanced_frames_told_apart_by_dimension_index_alone(tmp_path: Path) -> None:
    """Frames whose volumes only DimensionIndexValues tell apart (no TemporalPositionIndex, one time for all)."""
    path = tmp_path / "in" / "enhanced.dcm"
    truths = mf.write_enhanced_mr(path, 3)
    ds = pydicom.dcmread(path)
    for item in ds.PerFrameFunctionalGroupsSequence:
        content = item.FrameContentSequence[0]
        del content.TemporalPositionIndex, content.FrameAcquisitionDateTime
    ds.save_as(path)
    read = compare_all(tmp_path / "in", tmp_path / "out")
    for vol, truth in zip(read[""], truths, strict=True):
        assert_truth(vol, truth)


def test_enhanced_4d_of_a_vendor_dcm2niix_sorts_by_position(tmp_path: Path) -> None:
    """A 4-D enhanced file labelled Siemens: ctlens still follows its DimensionIndexValues (the standard).

    dcm2niix reads DimensionIndexValues only for Philips, Canon, Bruker and unnamed vendors (``nii_dicom.cpp``);
    a Siemens or GE file's frames are sorted by position alone there, which interleaves the time points. Real
    Siemens XA and GE enhanced files hold one volume per file, so this only documents where the two differ.
    """
    path = tmp_path / "in" / "enhanced.dcm"
    truths = mf.write_enhanced_mr(path, 3, frame_order="slice-major")
    ds = pydicom.dcmread(path)
    ds.Manufacturer = "SIEMENS"
    ds.save_as(path)
    volumes = load_volumes(tmp_path / "in")
    assert len(volumes) == 3
    for vol, truth in zip(volumes, truths, strict=True):
        assert_truth(vol, truth)


def test_mr_padding_value_keeps_values(tmp_path: Path) -> None:
    truths = mf.write_mr_series(tmp_path / "in", [{}], padding_value=0)
    vol = ctlens.load(tmp_path / "in")
    assert_truth(vol, truths[0])
    assert (vol.array == 0).any() and not (vol.array == -1024).any()
    assert vol.meta["pixel_padding_value"] == 0 and vol.meta["padding_as_air"] is False
    compare_all(tmp_path / "in", tmp_path / "out")


def test_ge_three_plane_localizer_is_never_the_default(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for k, orientation in enumerate((mf.AXIAL, mf.CORONAL, mf.SAGITTAL)):
        mf.write_mr_series(
            folder,
            [{"ImageType": ["ORIGINAL", "PRIMARY", "OTHER"], "SeriesNumber": 1}],
            n_slices=3,
            rows=16,
            cols=16,
            orientation=orientation,
            series_uid="1.2.826.0.1.3680043.8.498.77",
            description="ax cor sag",
            prefix=f"LOC{k}",
            seed=k,
        )
    (t2,) = mf.write_mr_series(folder, [{"SeriesNumber": 2}], n_slices=8, description="T2 FSE", prefix="T2")
    infos = list_series(folder)
    assert [i.description for i in infos] == ["T2 FSE"]
    assert_truth(ctlens.load(folder), t2)
    peers = peer.run_dcm2niix(folder, tmp_path / "out")
    peer.matching(ctlens.load(folder), peers)


def test_two_series_numbers_under_one_uid(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.78"
    a = mf.write_mr_series(tmp_path / "in", [{"SeriesNumber": 5}], series_uid=uid, prefix="A", seed=1)
    b = mf.write_mr_series(tmp_path / "in", [{"SeriesNumber": 6}], series_uid=uid, prefix="B", seed=2, n_slices=5)
    read = compare_all(tmp_path / "in", tmp_path / "out")
    assert sorted(read) == ["series 5", "series 6"]
    assert_truth(read["series 5"][0], a[0])
    assert_truth(read["series 6"][0], b[0])


def test_time_series_told_apart_by_instance_numbers_only(tmp_path: Path) -> None:
    """Volumes whose headers differ in InstanceNumber only (same times, no temporal position): dcm2niix's order."""
    truths = mf.write_mr_series(tmp_path / "in", [{}] * 3, volume_seconds=0.0, descending=True)
    for path in (tmp_path / "in").iterdir():  # one acquisition time for every plane
        ds = pydicom.dcmread(path)
        ds.AcquisitionTime = ds.ContentTime = "100000"
        ds.save_as(path)
    (info,) = list_series(tmp_path / "in")
    assert info.n_volumes == 3 and info.volume_labels == ["volume 1", "volume 2", "volume 3"]
    read = compare_all(tmp_path / "in", tmp_path / "out")
    for vol, truth in zip(read[""], truths, strict=True):
        assert_truth(vol, truth)
