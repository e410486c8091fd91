"""Provider clients through the real SDKs against fake servers on 127.0.0.1 speaking the wire protocols."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from fake_llm import ANSWER, input_tokens_for, start_fake  # noqa: E402

from ctlens.core.errors import LLMProviderError  # noqa: E402
from ctlens.core.settings import Settings  # noqa: E402
from ctlens.llm.providers import ChatDone, ChatImage, ChatPrompt, TextDelta, estimate_cost_usd, get_provider  # noqa: E402
from ctlens.llm.providers.anthropic_provider import AnthropicProvider  # noqa: E402
from ctlens.llm.providers.gemini_provider import GeminiProvider  # noqa: E402
from ctlens.llm.providers.openai_provider import OpenAIProvider  # noqa: E402


def _png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (24, 32), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


PROMPT = ChatPrompt(
    question="Is there a nodule?",
    context="candidate 1: 14 mm, right upper lobe",
    images=[ChatImage(_png(1), "slice 10 lung window"), ChatImage(_png(2), "slice 12")],
    history=[("user", "first question"), ("assistant", "first answer")],
)


@pytest.fixture(params=["anthropic", "openai", "gemini"])
def fake(request):
    server = start_fake(request.param)
    yield server
    server.stop()


def _provider(kind: str, base_url: str):
    cls = {"anthropic": AnthropicProvider, "openai": OpenAIProvider, "gemini": GeminiProvider}[kind]
    model = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4o", "gemini": "gemini-2.5-flash"}[kind]
    return cls(model, api_key="sk-test-123", base_url=base_url, max_output_tokens=256)


def _sent_images(kind: str, body: dict) -> list[bytes]:
    if kind == "anthropic":
        blocks = body["messages"][-1]["content"]
        return [base64.b64decode(b["source"]["data"]) for b in blocks if b["type"] == "image"]
    if kind == "openai":
        blocks = body["messages"][-1]["content"]
        urls = [b["image_url"]["url"] for b in blocks if b["type"] == "image_url"]
        assert all(u.startswith("data:image/png;base64,") for u in urls)
        return [base64.b64decode(u.split(",", 1)[1]) for u in urls]
    parts = body["contents"][-1]["parts"]
    # google-genai sends bytes as unpadded URL-safe base64
    datas = [p["inlineData"]["data"] for p in parts if "inlineData" in p]
    return [base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)) for d in datas]


def test_streams_answer_usage_and_images_through_the_real_sdk(fake):
    provider = _provider(fake.kind, fake.base_url)
    events = list(provider.stream(PROMPT))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == "".join(ANSWER)
    assert len(deltas) >= len(ANSWER)  # streamed in pieces, not one block
    done = events[-1]
    assert isinstance(done, ChatDone) and done.provider == fake.kind
    request = fake.requests[-1]
    assert done.usage.input_tokens == input_tokens_for(request.body)
    assert done.usage.output_tokens == 42
    assert done.cost_usd == estimate_cost_usd(fake.kind, provider.model, done.usage.input_tokens, 42)
    assert done.cost_usd is not None and done.cost_usd > 0
    body = request.json()
    assert _sent_images(fake.kind, body) == [PROMPT.images[0].data, PROMPT.images[1].data]
    text = request.body.decode()
    assert "Is there a nodule?" in text and "first answer" in text and "slice 10 lung window" in text
    key_headers = {"x-api-key", "authorization", "x-goog-api-key"}
    assert any("sk-test-123" in v for k, v in request.headers.items() if k.lower() in key_headers)


def test_anthropic_request_shape():
    fake = start_fake("anthropic")
    try:
        _provider("anthropic", fake.base_url).answer(PROMPT)
        body = fake.requests[-1].json()
        assert body["stream"] is True and body["max_tokens"] == 256
        assert body["system"].startswith("You are a radiology assistant")
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    finally:
        fake.stop()


def test_provider_errors_are_one_line():
    fake = start_fake("anthropic")
    try:
        broken = AnthropicProvider("claude-sonnet-4-6", api_key="k", base_url=fake.base_url + "/wrong")
        with pytest.raises(LLMProviderError, match="Anthropic request failed"):
            broken.answer(PROMPT)
    finally:
        fake.stop()


def test_openai_compatible_server_needs_no_key():
    fake = start_fake("openai")
    try:
        settings = Settings(openai_base_url=fake.base_url, openai_model="llama3.2-vision", anthropic_api_key=None)
        provider = get_provider(settings, "openai")
        text, done = provider.answer(PROMPT)
        assert text == "".join(ANSWER) and done.cost_usd is None  # a local model has no list price
        assert fake.requests[-1].json()["max_tokens"] == settings.llm_max_output_tokens
    finally:
        fake.stop()


def test_offline_provider_answers_from_findings_and_says_so():
    settings = Settings(
        llm_provider="auto", anthropic_api_key=None, openai_api_key=None, openai_base_url=None, gemini_api_key=None
    )
    provider = get_provider(settings)
    text, done = provider.answer(PROMPT)
    assert provider.name == "offline" and done.offline
    assert "offline" in text and "14 mm, right upper lobe" in text
    assert done.cost_usd == 0.0 and done.usage.input_tokens > 0


def test_auto_picks_the_configured_provider():
    settings = Settings(llm_provider="auto", anthropic_api_key=None, openai_api_key="sk-x", gemini_api_key=None)
    assert get_provider(settings).name == "openai"
    with pytest.raises(LLMProviderError, match="unknown LLM provider"):
        get_provider(settings, "mystery")
    with pytest.raises(LLMProviderError, match="no Anthropic API key"):
        get_provider(Settings(anthropic_api_key=None), "anthropic")
