"""build_payload on synthetic volumes: budget, cost steps, provider formats, candidates, records."""

from __future__ import annotations

import base64
import io
import json
import math

import pytest
from PIL import Image

from ctlens.analysis.findings import Candidate, Findings
from ctlens.core.errors import PayloadBudgetError
from ctlens.llm.payload import build_payload
from ctlens.llm.payload_types import Payload
from ctlens.llm.providers.formats import payload_request
from ctlens.llm.token_costs import image_tokens, resized_size


def _true_cost(p: Payload) -> int:
    """Image tokens recomputed from the decoded PNGs, plus the text's UTF-8 bytes (>= its tokens)."""
    total = 0
    for im in p.images:
        w, h = Image.open(io.BytesIO(im.png)).size
        total += image_tokens(w, h, p.provider, p.model, p.detail)
    return total + len(p.text.encode())


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-7"),
        ("openai", "gpt-4.1"),
        ("openai", "gpt-5.4"),
        ("gemini", "gemini-3-pro-preview"),
        ("gemini", "gemini-2.5-flash"),
    ],
)
@pytest.mark.parametrize("budget", [2000, 6000])
def test_budget_and_cost_steps(provider: str, model: str, budget: int, phantom, png_chunks) -> None:
    p = build_payload(phantom, "Any nodule?", provider=provider, model=model, token_budget=budget, progress=False)
    assert p.images
    assert p.token_estimate <= budget
    assert p.token_estimate >= _true_cost(p)
    for im in p.images:
        w, h = Image.open(io.BytesIO(im.png)).size
        assert (w, h) == (im.width, im.height)
        # The provider reads the image at the size sent, so the recorded tile scales are what the model sees.
        assert resized_size(w, h, provider, model) == (w, h) == im.provider_size
        assert im.tokens == image_tokens(w, h, provider, model)
        for t in im.tiles:
            x0, y0, x1, y1 = t.pixel_box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert t.scale >= 0.5
            assert math.isclose((y1 - y0) / (t.region[1] - t.region[0]), t.scale, rel_tol=0.02) or t.scale <= (
                x1 - x0
            ) / (t.region[3] - t.region[2])
        assert set(png_chunks(im.png)) <= {"IHDR", "PLTE", "IDAT", "IEND"}


def test_claude_cost_is_28px_patches(phantom) -> None:
    p = build_payload(phantom, "q", token_budget=6000, progress=False)
    for im in p.images:
        assert max(im.width, im.height) <= 1568
        assert im.tokens == math.ceil(im.width / 28) * math.ceil(im.height / 28) <= 1568
        assert im.width % 28 == 0 and im.height % 28 == 0  # ends exactly on a patch step


def test_all_slices_when_budget_allows_and_selection_when_not(make_phantom) -> None:
    vol = make_phantom(n_slices=200, size=128, nodule=(150, 153, 58, 40))
    rich = build_payload(vol, "q", token_budget=15000, progress=False, windows=("lung",))
    shown = {t.slice_index for im in rich.images for t in im.tiles}
    assert shown == set(range(200))
    box = (150, 153, 52, 65, 34, 47)
    poor = build_payload(vol, "q", token_budget=2000, progress=False, windows=("lung",), candidates=[box])
    shown = {t.slice_index for im in poor.images for t in im.tiles if t.kind == "montage"}
    assert 151 in shown and len(shown) < 200  # the candidate's slice is kept, coverage fills the rest
    spread = sorted(shown)
    assert spread[0] < 30 and spread[-1] > 170


def test_candidates_get_full_resolution_crops(make_phantom) -> None:
    vol = make_phantom(nodule=(10, 13, 58, 40))
    box = (10, 13, 52, 65, 34, 47)

    # the analysis convention: bbox = (z0, y0, x0, z1, y1, x1), inclusive
    finding = Candidate(kind="nodule candidate", score=0.9, bbox=(10, 52, 34, 12, 64, 46), slice_range=(10, 12))
    p = build_payload(vol, "Nodule?", findings=Findings(candidates=[finding]), token_budget=6000, progress=False)
    crops = [t for im in p.images for t in im.tiles if t.kind == "crop"]
    assert crops and all(t.shows(box) and t.scale >= 1.0 for t in crops)
    assert {t.window for t in crops} == {"lung", "mediastinum"}
    assert "nodule candidate (score 0.90) at slices 11-13" in p.text
    assert "crops around candidates" in p.text


def test_provider_formats(phantom) -> None:
    a = build_payload(phantom, "q", provider="anthropic", token_budget=3000, progress=False)
    blocks = payload_request(a)["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["image"] * len(a.images) + ["text"]
    assert base64.b64decode(blocks[0]["source"]["data"]) == a.images[0].png
    assert blocks[0]["source"]["media_type"] == "image/png"
    o = build_payload(phantom, "q", provider="openai", model="gpt-4.1", token_budget=3000, progress=False)
    chat = payload_request(o)["chat_completions"]["messages"][0]["content"]
    assert chat[0] == {"type": "text", "text": o.text}
    assert chat[1]["image_url"]["url"].startswith("data:image/png;base64,") and chat[1]["image_url"]["detail"] == "high"
    resp = payload_request(o)["responses"]["input"][0]["content"]
    assert resp[0]["type"] == "input_text" and resp[1]["type"] == "input_image"
    assert set(payload_request(o)) == {"chat_completions", "responses"}
    g3 = build_payload(phantom, "q", provider="gemini", token_budget=3000, progress=False)
    parts = payload_request(g3)["contents"][0]["parts"]
    assert parts[0]["inlineData"]["mimeType"] == "image/png"
    assert parts[0]["mediaResolution"] == {"level": "MEDIA_RESOLUTION_HIGH"}
    assert parts[-1] == {"text": g3.text}
    g2 = build_payload(phantom, "q", provider="gemini", model="gemini-2.5-pro", token_budget=3000, progress=False)
    assert "mediaResolution" not in payload_request(g2)["contents"][0]["parts"][0]
    json.dumps(g3.to_dict())  # plain JSON types throughout


def test_rgb_windows_and_records(tmp_path, phantom) -> None:
    p = build_payload(phantom, "q", rgb_windows=True, token_budget=3000, progress=False)
    assert {t.window for im in p.images for t in im.tiles} == {"rgb"}
    assert Image.open(io.BytesIO(p.images[0].png)).mode == "RGB"
    out = p.save_json(tmp_path / "p.json")
    record = json.loads(out.read_text())
    assert record["token_estimate"] == p.token_estimate
    assert record["images"][0]["tiles"][0]["region_yx"] == list(p.images[0].tiles[0].region)
    preview = p.save_preview(tmp_path / "p.png")
    assert Image.open(preview).height >= p.images[0].height


def test_budget_too_small_is_a_clear_error(phantom) -> None:
    with pytest.raises(PayloadBudgetError, match="budget"):
        build_payload(phantom, "q", token_budget=400, progress=False)
    with pytest.raises(ValueError, match="unknown CT window"):
        build_payload(phantom, "q", windows=("lungs",), progress=False)


def test_analysis_findings_are_understood(make_phantom) -> None:
    vol = make_phantom(nodule=(10, 13, 58, 40))
    # ctlens.analysis convention: bbox = (z0, y0, x0, z1, y1, x1), inclusive, with a slice_range.
    candidate = Candidate(kind="nodule", side="right", bbox=(10, 52, 34, 12, 64, 46), slice_range=(10, 12))
    found = Findings(region="chest", measurements={"laa950_percent": 5.712, "note": "x"}, candidates=[candidate])
    p = build_payload(vol, "q", findings=found, token_budget=6000, progress=False)
    crops = [t for im in p.images for t in im.tiles if t.kind == "crop"]
    assert crops and all(t.shows((10, 13, 52, 65, 34, 47)) for t in crops)
    assert "chest measurements: laa950_percent 5.71, note x" in p.text
    assert "right nodule" in p.text and "slices 11-13, rows 52-64, columns 34-46" in p.text
