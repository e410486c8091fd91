"""``ctlens analyze --overlays``: candidate labels are readable at 100 % (>= 12 px text) and never overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from typer.testing import CliRunner

from ctlens.analysis import Candidate, Findings, render_overlay
from ctlens.analysis.overlays import LABEL_MIN_PX
from ctlens.cli.main import app
from ctlens.core.volume import Volume


def _labels(png: Path) -> list[tuple[tuple[slice, slice], int]]:
    """Each candidate label drawn: (its black box, the height in pixels of the yellow text inside it)."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    black = (rgb == 0).all(axis=-1)
    yellow = (rgb[..., 0] > 150) & (rgb[..., 1] > 150) & (rgb[..., 2] < 100)
    boxes, _ = ndimage.label(ndimage.binary_fill_holes(black))  # a label box: black, its text as holes
    found = []
    for where in ndimage.find_objects(boxes):
        if not yellow[where].any():  # the title band (white text) and the slice numbers (cyan)
            continue
        ink_rows = np.flatnonzero((~black[where]).any(axis=1))
        found.append((where, int(ink_rows[-1] - ink_rows[0] + 1)))
    return found


def _two_close_candidates() -> tuple[Volume, Findings]:
    """A uniform chest slice stack with two candidates whose boxes nearly touch (their labels would collide)."""
    volume = Volume(np.full((4, 128, 128), -500, np.int16), spacing=(5.0, 0.8, 0.8))
    near = [(60, 40, 72, 52), (62, 44, 74, 56)]  # (y0, x0, y1, x1) on slice 1
    candidates = [
        Candidate(
            centre_voxel=(1.0, (y0 + y1) / 2, (x0 + x1) / 2),
            slice_range=(1, 1),
            bbox=(1, y0, x0, 1, y1, x1),
            slice_boxes={1: (y0, x0, y1, x1)},
            score=0.9 - 0.1 * i,
            kind="nodule",
        )
        for i, (y0, x0, y1, x1) in enumerate(near)
    ]
    return volume, Findings(region="chest", candidates=candidates, input_shape=volume.shape)


def test_labels_are_at_least_12_px_high_and_apart(tmp_path: Path) -> None:
    volume, findings = _two_close_candidates()
    png = render_overlay(volume, findings, tmp_path / "overlay.png", n_slices=1)
    labels = _labels(png)
    assert len(labels) == 2, labels  # two separate label boxes: they did not merge into one
    assert all(height >= LABEL_MIN_PX for _, height in labels), labels
    (a, _), (b, _) = labels
    apart_y = a[0].stop <= b[0].start or b[0].stop <= a[0].start
    apart_x = a[1].stop <= b[1].start or b[1].stop <= a[1].start
    assert apart_y or apart_x


def test_labels_grow_with_the_tile(tmp_path: Path) -> None:
    volume, findings = _two_close_candidates()
    small = _labels(render_overlay(volume, findings, tmp_path / "256.png", n_slices=1, tile=256))
    large = _labels(render_overlay(volume, findings, tmp_path / "512.png", n_slices=1, tile=512))
    assert min(h for _, h in large) > min(h for _, h in small) >= LABEL_MIN_PX


def test_analyze_overlay_png_has_readable_labels(tmp_path: Path) -> None:
    from ctlens.analysis import chest_phantom
    from ctlens.io import save

    volume, _ = chest_phantom(nodule_radius_mm=9.0)
    save(volume, tmp_path / "chest.nii.gz")
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "chest.nii.gz"), "--overlays", str(tmp_path / "ov")])
    assert result.exit_code == 0, result.output
    labels = _labels(tmp_path / "ov" / "overlay.png")
    assert labels and all(height >= LABEL_MIN_PX for _, height in labels), labels
