"""Payload quality on real lesions: Lung_Dx-A0002, both series, 6000-token Claude payloads.

The payload never sees the annotations: it is built from the pixels alone; the test then reads the payload's
own record of what each tile shows (slice, voxel region, scale) and checks every annotated tumour.
"""

from __future__ import annotations

import pytest

import ctlens
from ctlens.io.annotations import voc_annotations_for_volume
from ctlens.llm.payload import build_payload
from ctlens.llm.token_costs import resized_size
from shared_data import data_dir

pytestmark = pytest.mark.shared_data

MODEL = "claude-sonnet-4-5"


def _ranges(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for k in sorted(set(indices)):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


@pytest.mark.parametrize("series", ["series_B40f_8mm", "series_B70f_8mm"])
def test_every_tumour_shown_at_half_native_size(series: str) -> None:
    root = data_dir() / "lung_pet_ct_dx"
    folder = root / "Lung_Dx-A0002" / series
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    vol = ctlens.load(folder)
    payload = build_payload(vol, "Is there a lung tumour?", "anthropic", MODEL, token_budget=6000, progress=False)
    assert payload.token_estimate <= 6000
    for im in payload.images:  # Claude reads each image at the size sent: the recorded scale is what it sees
        assert resized_size(im.width, im.height, "anthropic", MODEL) == (im.width, im.height)

    boxes = voc_annotations_for_volume(vol, root / "annotations" / "Lung_Dx-A0002")
    assert len(boxes) >= 8
    by_slice = {b.slice_index: b for b in boxes}
    tiles = [t for im in payload.images for t in im.tiles]

    def shown(k: int) -> bool:
        b = by_slice[k]
        box = (k, k + 1, b.ymin, b.ymax + 1, b.xmin, b.xmax + 1)
        return any(t.shows(box) and t.scale >= 0.5 for t in tiles)

    for run in _ranges(list(by_slice)):  # the acceptance: each annotated range has at least one such image
        assert any(shown(k) for k in run), f"{series}: tumour slices {run} not shown at >= 0.5 scale"
    # With 30 slices the payload shows every slice, so every annotated tumour slice is shown.
    assert all(shown(k) for k in by_slice)
