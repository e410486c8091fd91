"""Lung volumes, LAA-950, nodule and haemorrhage detection on synthetic phantoms with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.analysis import analyze, chest_phantom, head_phantom, lung_density, segment_lungs


@pytest.mark.parametrize("radius", [15.0, 25.0])
def test_emphysema_index_and_lung_volumes(radius):
    vol, truth = chest_phantom(emphysema_radius_mm=radius, noise_hu=15.0)
    f = analyze(vol)
    m = f.measurements
    assert f.region == "chest"
    # voxelised sphere vs the analytic ball: within 5 %
    assert truth["emphysema_ml"] == pytest.approx(truth["emphysema_ml_analytic"], rel=0.05)
    assert m["laa950_percent"] == pytest.approx(truth["laa950_percent"], abs=0.05)
    assert m["right_lung_volume_ml"] == pytest.approx(truth["right_ml_analytic"], rel=0.02)
    assert m["left_lung_volume_ml"] == pytest.approx(truth["left_ml_analytic"], rel=0.02)
    assert m["mean_lung_density_hu"] < -850.0


def test_lung_density_counts_only_the_mask():
    hu = np.full((2, 4, 4), -980.0)
    mask = np.zeros(hu.shape, bool)
    mask[0] = True
    hu[0, :2] = -800.0
    assert lung_density(hu, mask)["laa950_percent"] == 50.0
    assert lung_density(hu, np.zeros(hu.shape, bool))["laa950_percent"] is None


def test_trachea_is_not_lung_and_sides_are_right():
    vol, truth = chest_phantom()
    seg = segment_lungs(vol.array.astype(np.float32), vol.spacing, vol.direction)
    assert seg.airway.any()
    assert seg.volume_ml("right") == pytest.approx(truth["right_ml"], rel=0.01)
    # flipping the array's x axis and its direction keeps the patient's sides
    flipped = vol.with_array(vol.array[:, :, ::-1].copy(), direction=vol.direction @ np.diag([1, 1, -1]))
    seg2 = segment_lungs(flipped.array.astype(np.float32), flipped.spacing, flipped.direction)
    assert seg2.volume_ml("left") == pytest.approx(truth["left_ml"], rel=0.01)
    assert (seg2.labels[:, :, ::-1] == seg.labels).mean() > 0.999


def test_nodule_found_with_its_size_and_place():
    vol, truth = chest_phantom(nodule_radius_mm=10.0, noise_hu=10.0)
    f = analyze(vol)
    assert len(f.candidates) == 1
    c = f.candidates[0]
    assert c.side == "left" and c.kind == "nodule"
    assert np.allclose(c.centre_voxel, truth["nodule_voxel"], atol=1.5)
    assert c.diameter_mm == pytest.approx(20.0, rel=0.25)
    assert np.allclose(c.centre_mm, vol.world(c.centre_voxel), atol=0.05)
    assert f.heatmap.max() == pytest.approx(c.score, abs=1e-3)


def test_no_candidates_in_a_clean_phantom():
    vol, _ = chest_phantom(noise_hu=15.0)
    assert analyze(vol).candidates == []


def test_head_phantom_bleed_found_and_clean_head_quiet():
    vol, truth = head_phantom(bleed_radius_mm=8.0, noise_hu=5.0)
    f = analyze(vol)
    assert f.region == "head"
    assert len(f.candidates) == 1 and f.candidates[0].kind == "hyperdense"
    assert np.allclose(f.candidates[0].centre_voxel, truth["bleed_voxel"], atol=2.0)
    clean = analyze(head_phantom(noise_hu=5.0)[0])
    assert clean.region == "head" and clean.candidates == []
    assert clean.measurements["brain_volume_ml"] == pytest.approx(truth["brain_ml"], rel=0.1)


def test_region_warnings_and_override():
    from ctlens.analysis import body_region

    vol, _ = chest_phantom()
    sagittal = vol.with_array(vol.array, direction=np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    assert any("not an axial series" in w for w in body_region(sagittal).warnings)
    assert body_region(vol).warnings == []
    forced = analyze(vol, region="image2d")
    assert forced.region == "image2d" and "region='image2d'" in forced.warnings[0]
