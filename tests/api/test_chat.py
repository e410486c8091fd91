"""Chat through the real SDKs to fake Anthropic/OpenAI servers: de-identified images go out, no PHI does."""

from __future__ import annotations

import base64
import io
import json
import logging

import dicom_factory
import pytest
from fake_llm import ANSWER, input_tokens_for, start_fake
from PIL import Image
from pydantic import SecretStr

from ctlens.llm.providers import estimate_cost_usd

STUDY_UID = "1.2.826.0.1.3680043.8.498.111222333444"
SERIES_UID = "1.2.826.0.1.3680043.8.498.555666777888"
PHI = [*dicom_factory.PHI_VALUES, STUDY_UID, SERIES_UID]


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def _images_in(kind: str, body: dict) -> list[bytes]:
    content = body["messages"][-1]["content"]
    if kind == "anthropic":
        return [base64.b64decode(b["source"]["data"]) for b in content if b["type"] == "image"]
    return [base64.b64decode(b["image_url"]["url"].split(",", 1)[1]) for b in content if b["type"] == "image_url"]


@pytest.fixture
def phi_study(server, tmp_path):
    truth = dicom_factory.write_ct_series(
        tmp_path / "phi", n_slices=10, rows=64, cols=64, study_uid=STUDY_UID, series_uid=SERIES_UID
    )
    raw = b"".join(p.read_bytes() for p in truth.paths)
    assert all(marker.encode() in raw for marker in dicom_factory.PHI_VALUES)  # the input really carries PHI
    files = [("files", (f"{p.name}", p.read_bytes(), "application/dicom")) for p in truth.paths]
    r = server.client().post("/api/analyze", files=files)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def fakes(server):
    servers = {kind: start_fake(kind) for kind in ("anthropic", "openai")}
    settings = server.ctx.settings
    saved = settings.model_dump()
    settings.anthropic_api_key = SecretStr("sk-ant-fake")
    settings.anthropic_base_url = servers["anthropic"].base_url
    settings.openai_api_key = SecretStr("sk-oai-fake")
    settings.openai_base_url = servers["openai"].base_url
    yield servers
    for name in ("anthropic_api_key", "anthropic_base_url", "openai_api_key", "openai_base_url", "llm_provider"):
        setattr(settings, name, saved[name] if not isinstance(saved[name], SecretStr) else None)
    settings.anthropic_api_key = settings.openai_api_key = None
    for fake in servers.values():
        fake.stop()


def test_chat_sends_deidentified_images_and_no_phi(server, phi_study, fakes, caplog):
    caplog.set_level(logging.DEBUG)
    client = server.client()
    sid = phi_study["id"]
    questions = {"anthropic": "Is there a nodule?", "openai": "And what about the mediastinum?"}
    for kind, fake in fakes.items():
        r = client.post(
            "/api/chat", data={"message": questions[kind], "study_id": sid, "stream": "true", "provider": kind}
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.text)
        assert events[0][0] == "meta" and events[0][1]["provider"] == kind and events[0][1]["images"] >= 1
        deltas = [data["text"] for name, data in events if name == "delta"]
        assert len(deltas) >= len(ANSWER) and "".join(deltas) == "".join(ANSWER)
        name, done = events[-1]
        assert name == "done" and done["answer"] == "".join(ANSWER)
        request = fake.requests[-1]
        assert done["input_tokens"] == input_tokens_for(request.body) and done["output_tokens"] == 42
        assert done["cost_usd"] == estimate_cost_usd(kind, done["model"], done["input_tokens"], 42)
        images = _images_in(kind, request.json())
        assert images and all(Image.open(io.BytesIO(png)).format == "PNG" for png in images)
        sent = request.body.decode()
        assert questions[kind] in sent
        for marker in PHI:
            assert marker not in sent, f"{marker} left the process in the {kind} request"
    # the second question carried the first answer: one conversation per study
    assert "".join(ANSWER) in fakes["openai"].requests[-1].body.decode()
    turns = client.get(f"/api/studies/{sid}/chat").json()["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    # nothing stored or logged carries PHI either
    stored = b"".join(p.read_bytes() for p in server.ctx.root.rglob("*") if p.is_file())
    for marker in PHI:
        assert marker.encode() not in stored and marker not in caplog.text


def test_non_streamed_chat_with_uploaded_image(server, fakes):
    buf = io.BytesIO()
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    exif = Image.Exif()
    exif[0x010E] = "Synthetic^Patient"  # ImageDescription carrying a name
    image.save(buf, "JPEG", exif=exif)
    assert b"Synthetic^Patient" in buf.getvalue()
    r = server.client().post(
        "/api/chat",
        data={"message": "What is this?", "provider": "anthropic"},
        files={"images": ("photo.jpg", buf.getvalue(), "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == "".join(ANSWER) and r.json()["images"] == 1
    sent = fakes["anthropic"].requests[-1].body.decode()
    assert "Synthetic^Patient" not in sent
    bad = server.client().post(
        "/api/chat", data={"message": "x"}, files={"images": ("a.png", b"not an image at all", "image/png")}
    )
    assert bad.status_code == 415
