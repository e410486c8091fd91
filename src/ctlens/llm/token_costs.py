"""Image token cost per provider and model family, from the providers' published rules.

Vision LLMs bill images by **pixels**, never by bytes: a PNG compressed ten times smaller costs exactly the
same. What can be chosen is which pixels are sent and at which size. This module answers, for an image of
``width x height`` pixels sent to ``provider``/``model``:

* :func:`resized_size` -- the size the provider itself downscales the image to before counting;
* :func:`image_tokens` -- the tokens it is billed;
* :func:`best_size` -- the smallest size ``>= (width, height)`` that ends exactly on a cost step (the padding up
  to the next 28 px patch, 32 px patch or 512 px tile is paid for anyway, so it may as well hold pixels) and
  that the provider does not downscale;
* :func:`limits` -- request limits (images per request, bytes per image and per request, dimensions).

Each rule names its source (URL and the date it was read) where it is defined below.

Example:
    >>> image_tokens(1000, 1000, "anthropic", "claude-sonnet-4-5")
    1296
    >>> image_tokens(1024, 1024, "openai", "gpt-4o")
    765
    >>> image_tokens(1024, 1024, "gemini", "gemini-3-pro-preview")
    1120
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "ImageRule",
    "RequestLimits",
    "best_size",
    "check_provider",
    "image_tokens",
    "limits",
    "resized_size",
    "rule_for",
]

PROVIDERS = ("anthropic", "openai", "gemini")


@dataclass(frozen=True)
class ImageRule:
    """How one model family turns an image into tokens (see the module docstring).

    ``kind`` is one of ``claude`` (28 px patches under an edge and a token cap), ``openai_tile`` (base + tokens
    per 512 px tile after the 2048 / 768 resize), ``openai_patch`` (32 px patches under a patch budget, times a
    multiplier), ``gemini_tile`` (258 tokens per 768 px tile, or 258 for an image within 384 px) and
    ``gemini_level`` (a fixed count per media-resolution level).
    """

    provider: str
    family: str
    kind: str
    source: str
    patch: int = 0
    max_edge: int = 0
    max_tokens: int = 0
    base_tokens: int = 0
    tile_tokens: int = 0
    multiplier: float = 1.0
    patch_budgets: tuple[tuple[str, int, int], ...] = ()
    """``(detail, max_dimension, patch_budget)``; budget 0 = none (openai_patch only)."""
    level_tokens: tuple[tuple[str, int], ...] = ()
    """``(level, tokens)`` (gemini_level only)."""
    default_detail: str = "high"


@dataclass(frozen=True)
class RequestLimits:
    """Limits of one request to a provider (``None`` where the provider publishes no figure)."""

    images_per_request: int
    bytes_per_image: int | None
    bytes_per_request: int | None
    max_dimension: int
    max_dimension_many_images: int | None
    many_images_threshold: int | None
    source: str


# ----------------------------------------------------------------------------------------------------------------
# Anthropic (Claude)
# Source: https://platform.claude.com/docs/en/build-with-claude/vision ("Resolution and token cost",
# "Request limits") and https://platform.claude.com/docs/en/build-with-claude/vision-coordinates ("How Claude
# resizes and pads images", reference implementation), read 2026-11-22.
#   * an image costs ceil(w/28) * ceil(h/28) visual tokens (28 x 28 px patches; the image is padded bottom/right);
#   * high-resolution tier (Claude 4.7 and later models: Opus 4.7, Opus 4.8, Sonnet 5, Fable 5, Mythos 5):
#     at most 2576 px long edge and 4784 visual tokens; standard tier (all other models): 1568 px / 1568 tokens;
#   * a larger image is scaled to the largest aspect-preserving size whose 28-px-padded edges fit the long-edge
#     limit and whose token count fits the token limit (binary search on the long edge, short edge rounded
#     half to even, as Python's round()).
#   * limits: 100 images per request for models with a 200k-token context (600 for others; we use the smaller),
#     8000 x 8000 px per image, 2000 x 2000 px when a request holds more than 20 images, 10 MB base64 per image
#     on the first-party API but 5 MB on Bedrock / Vertex AI (we use 5 MB), 32 MB per request.
# ----------------------------------------------------------------------------------------------------------------
_ANTHROPIC_SOURCE = (
    "https://platform.claude.com/docs/en/build-with-claude/vision and .../vision-coordinates (read 2026-11-22)"
)
_CLAUDE_STANDARD = ImageRule(
    "anthropic", "claude-standard", "claude", _ANTHROPIC_SOURCE, patch=28, max_edge=1568, max_tokens=1568
)
_CLAUDE_HIGH_RES = ImageRule(
    "anthropic", "claude-high-res", "claude", _ANTHROPIC_SOURCE, patch=28, max_edge=2576, max_tokens=4784
)
_ANTHROPIC_LIMITS = RequestLimits(100, 5 * 1024 * 1024, 32 * 1024 * 1024, 8000, 2000, 20, _ANTHROPIC_SOURCE)

# ----------------------------------------------------------------------------------------------------------------
# OpenAI
# Source: https://developers.openai.com/api/docs/guides/images-vision ("Calculating costs": patch-based and
# tile-based image tokenization, "Model sizing behavior", "Image input requirements"), read 2026-11-22; the 1536
# patch budget of the deprecated small models (gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano) is from the
# earlier version of the same page (platform.openai.com/docs/guides/images-vision, "Calculating costs").
# Tile models: fit in 2048 x 2048, then if the short side exceeds 768 px scale it to 768 (other side rounded
# down), count 512 px tiles; tokens = base + tiles * tile tokens; detail "low" = base only.
#   gpt-5.1, gpt-5: 70 / 140; gpt-4o, gpt-4.1, gpt-4.5: 85 / 170; gpt-4o-mini: 2833 / 5667; o1, o1-pro, o3: 75 / 150.
# Patch models: fit in the detail level's pixel limit (never enlarged), count 32 px patches; above the patch
# budget shrink by sqrt(32^2 * budget / (w h)) adjusted so that floor(w s / 32), floor(h s / 32) patches fit,
# floor the pixel sizes; tokens = ceil(patches * multiplier).
#   gpt-6*, gpt-5.6*, gpt-5.5, gpt-5.4*, gpt-5.2: multiplier 1.2; gpt-5-mini 1.2; gpt-5-nano 1.5;
#   gpt-4.1-mini 1.62; gpt-4.1-nano 2.46; o4-mini 1.72.
# Limits: up to 1,500 images and 512 MB per request (no separate per-image byte limit is published).
# ----------------------------------------------------------------------------------------------------------------
_OPENAI_SOURCE = "https://developers.openai.com/api/docs/guides/images-vision (read 2026-11-22)"
_OPENAI_LIMITS = RequestLimits(1500, None, 512 * 1024 * 1024, 65535, None, None, _OPENAI_SOURCE)


def _tile(family: str, base: int, tile: int) -> ImageRule:
    return ImageRule("openai", family, "openai_tile", _OPENAI_SOURCE, base_tokens=base, tile_tokens=tile)


def _patch(family: str, multiplier: float, budgets: tuple[tuple[str, int, int], ...]) -> ImageRule:
    return ImageRule(
        "openai", family, "openai_patch", _OPENAI_SOURCE, patch=32, multiplier=multiplier, patch_budgets=budgets
    )


# (detail, max dimension px, patch budget; 0 = no budget)
_B_GPT56 = (("low", 512, 0), ("high", 2048, 2500), ("original", 65535, 0), ("auto", 65535, 0))
_B_GPT55 = (("low", 512, 0), ("high", 2048, 2500), ("original", 6000, 10000), ("auto", 6000, 10000))
_B_GPT54 = (("low", 2048, 6144), ("high", 2048, 2500), ("original", 6000, 10000), ("auto", 2048, 2500))
_B_GPT52 = (("low", 2048, 6144), ("high", 2048, 6144), ("auto", 2048, 6144))
_B_SMALL_OLD = (("low", 2048, 1536), ("high", 2048, 1536), ("auto", 2048, 1536))

# Most specific patterns first: the first match wins.
_OPENAI_RULES: tuple[tuple[str, ImageRule], ...] = (
    (r"gpt-6", _patch("gpt-6", 1.2, _B_GPT56)),
    (r"gpt-5\.6", _patch("gpt-5.6", 1.2, _B_GPT56)),
    (r"gpt-5\.5", _patch("gpt-5.5", 1.2, _B_GPT55)),
    (r"gpt-5\.4", _patch("gpt-5.4", 1.2, _B_GPT54)),
    (r"gpt-5\.[23]", _patch("gpt-5.2", 1.2, _B_GPT52)),
    (r"gpt-5\.1", _tile("gpt-5.1", 70, 140)),
    (r"gpt-5-mini", _patch("gpt-5-mini", 1.2, _B_SMALL_OLD)),
    (r"gpt-5-nano", _patch("gpt-5-nano", 1.5, _B_SMALL_OLD)),
    (r"gpt-5", _tile("gpt-5", 70, 140)),
    (r"gpt-4\.1-mini", _patch("gpt-4.1-mini", 1.62, _B_GPT52)),
    (r"gpt-4\.1-nano", _patch("gpt-4.1-nano", 2.46, _B_SMALL_OLD)),
    (r"o4-mini", _patch("o4-mini", 1.72, _B_SMALL_OLD)),
    (r"gpt-4o-mini", _tile("gpt-4o-mini", 2833, 5667)),
    (r"gpt-4o|gpt-4\.1|gpt-4\.5|gpt-4-turbo", _tile("gpt-4o", 85, 170)),
    (r"^o1|^o3", _tile("o1", 75, 150)),
)

# ----------------------------------------------------------------------------------------------------------------
# Google Gemini
# Sources: https://ai.google.dev/gemini-api/docs/media-resolution ("Token counts": Gemini 3 images cost a fixed
# count per media-resolution level, LOW 280, MEDIUM 560, HIGH 1120, ULTRA_HIGH 2240 (per part only); default
# for images 1120 = HIGH, also https://docs.cloud.google.com/vertex-ai/generative-ai/docs/multimodal/image-understanding
# "Default resolution tokens: 1120") and https://ai.google.dev/gemini-api/docs/tokens (Gemini 2.x: an image with
# both dimensions <= 384 px counts 258 tokens; larger images are cropped and scaled into 768 x 768 tiles of 258
# tokens each), read 2026-11-22.
# Limits (Vertex AI image-understanding page, read 2026-11-22): 900 images per prompt for Gemini 3 Pro, 3,000 for
# Gemini 2.5; 7 MB per inline image; the Gemini API's inline request size limit is 20 MB.
# ----------------------------------------------------------------------------------------------------------------
_GEMINI_SOURCE = (
    "https://ai.google.dev/gemini-api/docs/media-resolution, https://ai.google.dev/gemini-api/docs/tokens, "
    "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/multimodal/image-understanding (read 2026-11-22)"
)
_GEMINI_LEVELS = ImageRule(
    "gemini",
    "gemini-3",
    "gemini_level",
    _GEMINI_SOURCE,
    level_tokens=(("low", 280), ("medium", 560), ("high", 1120), ("ultra_high", 2240)),
)
_GEMINI_TILES = ImageRule("gemini", "gemini-2", "gemini_tile", _GEMINI_SOURCE, patch=768, base_tokens=258)
_GEMINI3_LIMITS = RequestLimits(900, 7 * 1024 * 1024, 20 * 1024 * 1024, 65535, None, None, _GEMINI_SOURCE)
_GEMINI2_LIMITS = RequestLimits(3000, 7 * 1024 * 1024, 20 * 1024 * 1024, 65535, None, None, _GEMINI_SOURCE)

# The render size ctlens uses for one Gemini 3 image per level. Gemini 3 bills a fixed count whatever the size,
# and Google does not publish the internal resolution; these are ctlens's choice, not a provider rule.
GEMINI_LEVEL_CANVAS = {"low": 512, "medium": 768, "high": 1536, "ultra_high": 3072}


def check_provider(provider: str) -> str:
    """The canonical provider name of ``provider`` (aliases ``claude``, ``google``, ``gpt``); ValueError if unknown.

    Example:
        >>> check_provider("Claude")
        'anthropic'
    """
    p = provider.lower().strip()
    aliases = {"claude": "anthropic", "google": "gemini", "gpt": "openai"}
    p = aliases.get(p, p)
    if p not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    return p


def _claude_version(model: str) -> tuple[int, int] | None:
    """``(major, minor)`` from ids such as claude-opus-4-7, claude-sonnet-4-5-20250929, claude-3-5-sonnet-2024..."""
    m = re.search(r"claude-(?:[a-z]+-)?(\d{1,2})(?:[-.](\d{1,2}))?(?![0-9])", model.lower())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def rule_for(provider: str, model: str) -> ImageRule:
    """The image rule of ``model``'s family.

    Unknown Claude ids get the standard tier (the tighter one: an image sized for it is read unresized by every
    Claude model). Unknown OpenAI ids raise (their rules differ too much to guess); unknown Gemini ids get the
    Gemini 3 levels.

    Example:
        >>> rule_for("anthropic", "claude-opus-4-7").max_tokens, rule_for("anthropic", "claude-haiku-4-5").max_tokens
        (4784, 1568)
        >>> rule_for("openai", "gpt-4.1-mini").kind
        'openai_patch'
    """
    p = check_provider(provider)
    name = model.lower().strip()
    if p == "anthropic":
        version = _claude_version(name)
        return _CLAUDE_HIGH_RES if version is not None and version >= (4, 7) else _CLAUDE_STANDARD
    if p == "openai":
        for pattern, rule in _OPENAI_RULES:
            if re.search(pattern, name):
                return rule
        raise ValueError(f"no published image-token rule known for OpenAI model {model!r}")
    if re.search(r"gemini-(1|2)(\.|-)", name):
        return _GEMINI_TILES
    return _GEMINI_LEVELS


def limits(provider: str, model: str) -> RequestLimits:
    """Request limits for ``model`` (see :class:`RequestLimits`).

    Example:
        >>> limits("anthropic", "claude-sonnet-4-5").images_per_request
        100
    """
    rule = rule_for(provider, model)
    if rule.provider == "anthropic":
        return _ANTHROPIC_LIMITS
    if rule.provider == "openai":
        return _OPENAI_LIMITS
    return _GEMINI3_LIMITS if rule.kind == "gemini_level" else _GEMINI2_LIMITS


def _claude_fits(w: int, h: int, rule: ImageRule) -> bool:
    p = rule.patch
    return (
        math.ceil(w / p) * p <= rule.max_edge
        and math.ceil(h / p) * p <= rule.max_edge
        and math.ceil(w / p) * math.ceil(h / p) <= rule.max_tokens
    )


def _claude_resized(width: int, height: int, rule: ImageRule) -> tuple[int, int]:
    if _claude_fits(width, height, rule):
        return width, height
    if height > width:
        h, w = _claude_resized(height, width, rule)
        return w, h
    aspect = width / height
    lo, hi = 1, width  # lo always fits, hi never does
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if _claude_fits(mid, max(round(mid / aspect), 1), rule):
            lo = mid
        else:
            hi = mid
    return lo, max(round(lo / aspect), 1)


def _openai_tile_resized(width: int, height: int) -> tuple[int, int]:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return max(int(math.floor(w + 1e-9)), 1), max(int(math.floor(h + 1e-9)), 1)


def _detail(rule: ImageRule, detail: str | None) -> str:
    d = (detail or rule.default_detail).lower()
    if rule.kind == "openai_patch":
        known = [b[0] for b in rule.patch_budgets]
    elif rule.kind == "gemini_level":
        known = [lv[0] for lv in rule.level_tokens]
        d = d.removeprefix("media_resolution_")
    else:
        known = ["low", "high", "auto"]
    if d not in known:
        raise ValueError(f"detail {detail!r} is not supported by {rule.family}; known: {', '.join(known)}")
    return d


def _openai_patch_resized(width: int, height: int, rule: ImageRule, detail: str) -> tuple[int, int]:
    _, max_dim, budget = next(b for b in rule.patch_budgets if b[0] == detail)
    w, h = float(width), float(height)
    if max(w, h) > max_dim:  # fit in the pixel limit, never enlarge
        s = max_dim / max(w, h)
        w, h = float(max(int(w * s), 1)), float(max(int(h * s), 1))
    p = rule.patch
    if budget and math.ceil(w / p) * math.ceil(h / p) > budget:
        shrink = math.sqrt(p * p * budget / (w * h))
        adjusted = shrink * min(
            math.floor(w * shrink / p) / (w * shrink / p), math.floor(h * shrink / p) / (h * shrink / p)
        )
        w, h = float(max(int(math.floor(w * adjusted)), 1)), float(max(int(math.floor(h * adjusted)), 1))
    return int(w), int(h)


def resized_size(width: int, height: int, provider: str, model: str, detail: str | None = None) -> tuple[int, int]:
    """The ``(width, height)`` the provider scales an image to before counting its tokens.

    Gemini 3 does not publish its internal size (a fixed count per level): the size is returned unchanged.

    Example:
        >>> resized_size(1920, 1080, "anthropic", "claude-sonnet-4-5")
        (1456, 819)
        >>> resized_size(2048, 4096, "openai", "gpt-4o")
        (768, 1536)
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    rule = rule_for(provider, model)
    if rule.kind == "claude":
        return _claude_resized(int(width), int(height), rule)
    if rule.kind == "openai_tile":
        if _detail(rule, detail) == "low":
            return min(width, 512), min(height, 512)  # processed as a low-resolution thumbnail
        return _openai_tile_resized(int(width), int(height))
    if rule.kind == "openai_patch":
        return _openai_patch_resized(int(width), int(height), rule, _detail(rule, detail))
    return int(width), int(height)


def image_tokens(width: int, height: int, provider: str, model: str, detail: str | None = None) -> int:
    """Tokens billed for one ``width x height`` image (after the provider's own resize).

    ``detail``: OpenAI ``low`` / ``high`` / ``original`` / ``auto`` (default ``high``); Gemini 3 level ``low`` /
    ``medium`` / ``high`` / ``ultra_high`` (default ``high``); ignored for Claude.

    Example:
        >>> image_tokens(2048, 4096, "openai", "gpt-4o"), image_tokens(4096, 8192, "openai", "gpt-4o", "low")
        (1105, 85)
        >>> image_tokens(384, 384, "gemini", "gemini-2.0-flash")
        258
    """
    rule = rule_for(provider, model)
    w, h = resized_size(width, height, provider, model, detail)
    if rule.kind == "claude":
        return math.ceil(w / rule.patch) * math.ceil(h / rule.patch)
    if rule.kind == "openai_tile":
        if _detail(rule, detail) == "low":
            return rule.base_tokens
        return rule.base_tokens + rule.tile_tokens * math.ceil(w / 512) * math.ceil(h / 512)
    if rule.kind == "openai_patch":
        patches = math.ceil(w / rule.patch) * math.ceil(h / rule.patch)
        return math.ceil(round(patches * rule.multiplier, 6))
    if rule.kind == "gemini_tile":
        if w <= 384 and h <= 384:
            return rule.base_tokens
        return rule.base_tokens * math.ceil(w / rule.patch) * math.ceil(h / rule.patch)
    return dict(rule.level_tokens)[_detail(rule, detail)]


def best_size(width: int, height: int, provider: str, model: str, detail: str | None = None) -> tuple[int, int]:
    """Smallest ``(W, H) >= (width, height)`` that ends on a cost step and is not downscaled by the provider.

    The extra pixels (up to the next 28 / 32 px patch or 512 / 768 px tile) cost nothing, so a renderer can use
    them. Raises ``ValueError`` when no such size exists (the content is larger than the provider reads unresized).

    Example:
        >>> best_size(1000, 700, "anthropic", "claude-sonnet-4-5")
        (1008, 700)
        >>> best_size(700, 1000, "openai", "gpt-4o")
        (768, 1024)
    """
    rule = rule_for(provider, model)
    w, h = int(width), int(height)
    if rule.kind in ("claude", "openai_patch"):
        p = rule.patch
        out = (math.ceil(w / p) * p, math.ceil(h / p) * p)
    elif rule.kind == "openai_tile":
        if _detail(rule, detail) == "low":
            out = (w, h) if max(w, h) <= 512 else (0, 0)
        else:

            def step(v: int) -> int:
                return min(math.ceil(v / 512) * 512, 2048)

            short_cap = 768
            sw, sh = step(w), step(h)
            if min(w, h) <= short_cap:  # the short side may not pass 768 or the provider rescales
                if w <= h:
                    sw = min(sw, short_cap)
                else:
                    sh = min(sh, short_cap)
            out = (sw, sh)
    elif rule.kind == "gemini_tile":
        out = (384, 384) if w <= 384 and h <= 384 else (math.ceil(w / 768) * 768, math.ceil(h / 768) * 768)
    else:
        out = (w, h)
    if out[0] < w or out[1] < h or resized_size(out[0], out[1], provider, model, detail) != out:
        raise ValueError(f"a {w}x{h} image is downscaled by {rule.family}; no unresized cost step holds it")
    return out
