"""Image-token rules against the hand-worked examples published by each provider."""

from __future__ import annotations

import math

import pytest

from ctlens.llm.token_costs import best_size, image_tokens, limits, resized_size, rule_for

STANDARD = "claude-sonnet-4-5"
HIGH_RES = "claude-opus-4-7"


# Anthropic, https://platform.claude.com/docs/en/build-with-claude/vision, "Resolution and token cost" table
# (read 2026-11-22): image size -> downsized size and visual tokens, per tier.
@pytest.mark.parametrize(
    ("size", "model", "resized", "tokens"),
    [
        ((200, 200), STANDARD, (200, 200), 64),
        ((1000, 1000), STANDARD, (1000, 1000), 1296),
        ((1092, 1092), STANDARD, (1092, 1092), 1521),
        ((1920, 1080), STANDARD, (1456, 819), 1560),
        ((3840, 2160), STANDARD, (1456, 819), 1560),
        ((200, 200), HIGH_RES, (200, 200), 64),
        ((1920, 1080), HIGH_RES, (1920, 1080), 2691),
        ((2000, 1500), HIGH_RES, (2000, 1500), 3888),
        ((3840, 2160), HIGH_RES, (2576, 1449), 4784),
        # vision-coordinates, "How Claude resizes and pads images": an A4 scan of 1075x1520 px costs
        # 39 x 55 = 2145 tokens > 1568, so the standard tier resizes it to 924x1307 (33 x 47 = 1551 tokens).
        ((1075, 1520), STANDARD, (924, 1307), 1551),
        ((1075, 1520), HIGH_RES, (1075, 1520), 2145),
    ],
)
def test_anthropic_documented_examples(size, model, resized, tokens) -> None:
    assert resized_size(*size, "anthropic", model) == resized
    assert image_tokens(*size, "anthropic", model) == tokens


def test_anthropic_2000x1500_standard() -> None:
    # The docs' table says 1269x952 and 1564 tokens; Anthropic's reference implementation (binary search on the
    # long edge, banker's rounding of the short one) gives 1270x952 -- the same 46 x 34 = 1564 tokens.
    w, h = resized_size(2000, 1500, "anthropic", STANDARD)
    assert h == 952 and w in (1269, 1270)
    assert image_tokens(2000, 1500, "anthropic", STANDARD) == 1564


def test_anthropic_tiers_by_model_id() -> None:
    for model in ("claude-opus-4-7", "claude-opus-4-8", "claude-sonnet-5", "claude-opus-5-20270101"):
        assert rule_for("anthropic", model).max_tokens == 4784, model
    for model in ("claude-sonnet-4-5-20250929", "claude-haiku-4-5", "claude-3-5-sonnet-20241022", "claude-x"):
        assert rule_for("anthropic", model).max_tokens == 1568, model


# OpenAI, https://developers.openai.com/api/docs/guides/images-vision, "Tile-based image tokenization"
# (read 2026-11-22): "A 1024 x 1024 square image in detail: high mode costs 765 tokens" (768x768, 4 tiles,
# 170 * 4 + 85); "A 2048 x 4096 image ... costs 1105 tokens" (1024x2048 -> 768x1536, 6 tiles); "A 4096 x 8192
# image in detail: low costs 85 tokens".
def test_openai_tile_documented_examples() -> None:
    assert image_tokens(1024, 1024, "openai", "gpt-4o") == 765
    assert resized_size(2048, 4096, "openai", "gpt-4o") == (768, 1536)
    assert image_tokens(2048, 4096, "openai", "gpt-4o") == 1105
    assert image_tokens(4096, 8192, "openai", "gpt-4o", detail="low") == 85
    # Same rule, other base / tile numbers from the page's table: gpt-4o-mini 2833 / 5667, o1 75 / 150,
    # gpt-5.1 70 / 140. Worked by hand: 1024x1024 -> 4 tiles.
    assert image_tokens(1024, 1024, "openai", "gpt-4o-mini") == 2833 + 4 * 5667
    assert image_tokens(1024, 1024, "openai", "o1") == 75 + 4 * 150
    assert image_tokens(1024, 1024, "openai", "gpt-5.1") == 70 + 4 * 140
    # 1920x1080 fits 2048, short side 1080 -> 768 gives 1365x768: 3 x 2 tiles -> 85 + 6 * 170 = 1105.
    assert resized_size(1920, 1080, "openai", "gpt-4.1") == (1365, 768)
    assert image_tokens(1920, 1080, "openai", "gpt-4.1") == 1105


# OpenAI patch models, same page, "Patch-based image tokenization": "Cost calculation examples for gpt-5.4 with
# detail: high": 1024x1024 -> 1024 patches -> ceil(1024 * 1.2) = 1229; 2048x2048 -> budget 2500 shrinks it to
# 1600x1600 -> 2500 patches -> 3000 tokens.
def test_openai_patch_documented_examples() -> None:
    assert image_tokens(1024, 1024, "openai", "gpt-5.4") == 1229
    assert resized_size(2048, 2048, "openai", "gpt-5.4") == (1600, 1600)
    assert image_tokens(2048, 2048, "openai", "gpt-5.4") == 3000
    # The earlier version of the page (1536-patch models: gpt-4.1-nano, o4-mini): "A 1800 x 2400 image is 1452
    # tokens" before the multiplier: 57 x 75 = 4275 patches > 1536, shrink 0.5866 -> 1056x1408 -> 33 x 44 = 1452.
    assert resized_size(1800, 2400, "openai", "o4-mini") == (1056, 1408)
    assert image_tokens(1800, 2400, "openai", "o4-mini") == math.ceil(1452 * 1.72)
    assert image_tokens(1024, 1024, "openai", "gpt-4.1-nano") == math.ceil(1024 * 2.46)


# Gemini, https://ai.google.dev/gemini-api/docs/media-resolution (Gemini 3: LOW 280, MEDIUM 560, HIGH 1120,
# ULTRA_HIGH 2240 per image, default HIGH) and https://ai.google.dev/gemini-api/docs/tokens (Gemini 2.x: 258 for
# an image within 384x384, else 258 per 768x768 tile), read 2026-11-22.
def test_gemini_documented_rules() -> None:
    m3 = "gemini-3-pro-preview"
    assert [image_tokens(900, 700, "gemini", m3, lv) for lv in ("low", "medium", "high", "ultra_high")] == [
        280,
        560,
        1120,
        2240,
    ]
    assert image_tokens(4000, 3000, "gemini", m3) == 1120
    assert image_tokens(384, 384, "gemini", "gemini-2.0-flash") == 258
    assert image_tokens(385, 100, "gemini", "gemini-2.5-pro") == 258  # one 768 tile
    assert image_tokens(1000, 1000, "gemini", "gemini-2.5-flash") == 4 * 258


def test_best_size_lands_on_cost_steps() -> None:
    # Claude: the next multiple of 28 costs the same as the content size and is not resized.
    w, h = best_size(1000, 700, "anthropic", STANDARD)
    assert (w % 28, h % 28) == (0, 0) and (w, h) >= (1000, 700)
    assert image_tokens(w, h, "anthropic", STANDARD) == image_tokens(1000, 700, "anthropic", STANDARD)
    assert image_tokens(w + 1, h, "anthropic", STANDARD) > image_tokens(w, h, "anthropic", STANDARD)
    # OpenAI tiles: 512 steps, the short side capped at 768 so the provider does not rescale.
    assert best_size(700, 1000, "openai", "gpt-4o") == (768, 1024)
    assert best_size(300, 300, "openai", "gpt-4o") == (512, 512)
    # Patches: 32 px steps.
    assert best_size(100, 65, "openai", "gpt-5.4") == (128, 96)
    with pytest.raises(ValueError, match="downscaled"):
        best_size(1600, 1600, "anthropic", STANDARD)
    with pytest.raises(ValueError, match="downscaled"):
        best_size(900, 900, "openai", "gpt-4o")


def test_limits_and_errors() -> None:
    claude = limits("anthropic", STANDARD)
    assert (claude.images_per_request, claude.max_dimension, claude.max_dimension_many_images) == (100, 8000, 2000)
    assert claude.bytes_per_request == 32 * 1024 * 1024
    assert limits("openai", "gpt-4o").images_per_request == 1500
    assert limits("gemini", "gemini-3-pro-preview").images_per_request == 900
    with pytest.raises(ValueError, match="unknown provider"):
        image_tokens(10, 10, "acme", "x")
    with pytest.raises(ValueError, match="no published"):
        image_tokens(10, 10, "openai", "davinci")
    with pytest.raises(ValueError, match="detail"):
        image_tokens(10, 10, "openai", "gpt-4o", detail="original")
