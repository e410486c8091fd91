"""2-D path, errors, Findings JSON round trip, overlay PNG and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ctlens.analysis import Findings, analyze, analyze_image2d, chest_phantom, render_overlay
from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume


def _png(tmp_path):
    img = np.full((96, 128), 20, np.uint8)
    img[30:60, 40:90] = 220  # one bright object
    path = tmp_path / "shot.png"
    Image.fromarray(img).save(path)
    return path


def test_png_gets_roi_heatmap_and_box(tmp_path):
    f = analyze(_png(tmp_path))
    assert f.region == "image2d" and f.warnings
    assert f.heatmap.shape == (1, 96, 128) and f.heatmap.dtype == np.float32
    assert f.roi_mask[0, 30, 65] and not f.roi_mask[0, 5, 5]  # the edge holds the detail
    z0, y0, x0, z1, y1, x1 = f.candidates[0].bbox
    assert y0 <= 30 and y1 >= 59 and x0 <= 40 and x1 >= 89


def test_array_and_rgb_inputs():
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[10:30, 10:30] = 255
    assert analyze_image2d(rgb).candidates
    with pytest.raises(CTLensError):
        analyze_image2d(np.zeros((2, 3, 4, 5)))


def test_flat_and_bad_inputs_never_crash(tmp_path):
    flat = analyze(Volume(np.zeros((1, 16, 16), np.uint8), modality="OT"))
    assert flat.candidates == [] and float(flat.heatmap.max()) == 0.0
    with pytest.raises(CTLensError):
        analyze(tmp_path / "missing.nii.gz")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(CTLensError):
        analyze(bad)


def test_findings_json_round_trip_and_arrays(tmp_path):
    vol, _ = chest_phantom(nodule_radius_mm=9.0)
    f = analyze(vol)
    g = Findings.from_json(f.to_json())
    assert g.to_dict() == {**f.to_dict(), "has_heatmap": False, "has_roi_mask": False}
    assert g.candidates[0].slice_boxes == f.candidates[0].slice_boxes
    f.save(tmp_path / "f.json")
    f.save_arrays(tmp_path / "f.npz")
    h = Findings.from_json((tmp_path / "f.json").read_text()).load_arrays(tmp_path / "f.npz")
    assert np.array_equal(h.roi_mask, f.roi_mask)
    assert np.allclose(h.heatmap, f.heatmap, atol=1e-3)


def test_overlay_png(tmp_path):
    vol, _ = chest_phantom(nodule_radius_mm=9.0)
    out = render_overlay(vol, analyze(vol), tmp_path / "overlay.png")
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and (img[..., 0] > 200).any()  # something coloured was drawn


def test_cli_analyze(tmp_path):
    from ctlens.cli.main import app

    vol, _ = chest_phantom(nodule_radius_mm=9.0)
    from ctlens.io import save

    save(vol, tmp_path / "chest.nii.gz")
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path / "chest.nii.gz"),
            "--out",
            str(tmp_path / "f.json"),
            "--overlays",
            str(tmp_path / "ov"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["region"] == "chest" and len(data["candidates"]) == 1
    assert list((tmp_path / "ov").glob("*.png"))
    bad = CliRunner().invoke(app, ["analyze", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "g.json")])
    assert bad.exit_code == 2 and not (tmp_path / "g.json").exists()


def _many_regions(n_slices: int = 3) -> np.ndarray:
    """Slices with 16 separate squares of different contrast and size on a flat background (MR-like scale)."""
    rng = np.random.default_rng(0)
    img = np.full((n_slices, 128, 128), 100, np.int16)
    for z in range(n_slices):
        for i in range(4):
            for j in range(4):
                size = 6 + 2 * ((i + j + z) % 4)
                y, x = 8 + 30 * i, 8 + 30 * j
                img[z, y : y + size, x : x + size] = 100 + 40 * (1 + (3 * i + j + z) % 7) + rng.integers(0, 30)
    return img


def test_texture_regions_are_sorted_by_score_and_capped():
    from ctlens.analysis.image2d import MAX_TEXTURE_REGIONS

    mr = Volume(_many_regions(), spacing=(3.0, 1.0, 1.0), modality="MR")
    full = analyze_image2d(mr, max_regions=1000)
    scores = [c.score for c in full.candidates]
    assert len(scores) > MAX_TEXTURE_REGIONS and scores == sorted(scores, reverse=True)
    assert full.measurements["texture_regions"] == len(scores)
    f = analyze(mr)  # MR goes to the 2-D path
    assert f.region == "image2d" and len(f.candidates) == MAX_TEXTURE_REGIONS
    assert [c.score for c in f.candidates] == scores[:MAX_TEXTURE_REGIONS]
    assert {c.kind for c in f.candidates} == {"texture"} and "texture" in f.method
    assert f.measurements["texture_regions"] == len(scores) and f.measurements["texture_regions_listed"] == 5
    assert any(f"{len(scores)} texture regions" in w and "not lesions" in w for w in f.warnings)
    assert f.parameters["max_texture_regions"] == MAX_TEXTURE_REGIONS
    assert len(analyze_image2d(mr, max_regions=2).candidates) == 2


def test_one_region_has_no_cap_warning(tmp_path):
    f = analyze(_png(tmp_path))
    assert len(f.candidates) == f.measurements["texture_regions"] <= 5
    assert not any("texture regions" in w for w in f.warnings)
