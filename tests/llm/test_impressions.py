"""Impression generation through the real ``openai`` SDK against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from fake_llm import _sse, input_tokens_for  # noqa: E402

from ctlens.core.errors import LLMProviderError  # noqa: E402
from ctlens.core.settings import Settings  # noqa: E402
from ctlens.llm.impressions import generate_impressions  # noqa: E402
from ctlens.llm.providers import estimate_cost_usd  # noqa: E402

FAIL_MARK = "BROKENROW"
ROWS = [
    # VolumeName, ClinicalInformation_EN, Findings_EN, Impressions_EN
    ("train_1_a_1", "Cough.", "Right pleural effusion of 2 cm.", "Right pleural effusion."),
    ("train_2_a_1", "Fever.", "Consolidation in the left lower lobe.", "Left lower lobe pneumonia."),
    ("train_3_a_1", "", "8 mm nodule in the right upper lobe.", "nan"),
    ("train_4_a_1", "Smoker.", "Centrilobular emphysema.", "Emphysema."),
    ("train_5_a_1", "", f"Cardiomegaly. {FAIL_MARK}", ""),
    ("train_6_a_1", "Secret clinical note.", "Hiatal hernia.", "None"),
    ("train_7_a_1", "", "nan", ""),
    ("train_8_a_1", "", "Normal lungs.", "No acute findings."),
]
HEADER = ["VolumeName", "ClinicalInformation_EN", "Findings_EN", "Impressions_EN"]


def _last_user_text(req: dict) -> str:
    content = req["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def _answer_for(findings_text: str) -> str:
    return "IMPRESSION<" + findings_text.split("Findings:\n", 1)[-1].split("\n")[0] + ">"


class _Fake:
    """OpenAI-compatible streaming server: answers from the target findings, 400 for ``FAIL_MARK`` rows."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = json.loads(body)
                fake.requests.append(req)
                text = _last_user_text(req)
                if FAIL_MARK in text:
                    payload = b'{"error": {"message": "bad request", "type": "invalid_request_error"}}'
                    self.send_response(400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                answer = _answer_for(text)
                base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": req["model"]}
                pieces = [answer[: len(answer) // 2], answer[len(answer) // 2 :]]
                events = [
                    (None, json.dumps(base | {"choices": [{"index": 0, "delta": {"content": p}}]})) for p in pieces
                ]
                usage = {"prompt_tokens": input_tokens_for(body), "completion_tokens": 7, "total_tokens": 0}
                events += [(None, json.dumps(base | {"choices": [], "usage": usage})), (None, "[DONE]")]
                _sse(self, events)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def fake():
    server = _Fake()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    path = tmp_path / "reports.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    return path


def _settings(base_url: str | None) -> Settings:
    return Settings(
        llm_provider="auto",
        anthropic_api_key=None,
        openai_api_key=None,
        openai_base_url=base_url,
        openai_model="gpt-4o-mini",
        gemini_api_key=None,
    )


def _read(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["VolumeName"]: row for row in csv.DictReader(fh)}


def test_fills_missing_impressions_with_few_shot_prompts(fake, reports, tmp_path):
    out = tmp_path / "filled.csv"
    report = generate_impressions(reports, out, provider="openai", settings=_settings(fake.base_url), examples=2)

    # three candidates (rows 3, 5, 6); row 7 has no findings; the failing row is recorded, the rest go on
    assert (report.missing, report.generated, report.examples) == (3, 2, 2)
    assert list(report.failed) == ["train_5_a_1"] and "400" in report.failed["train_5_a_1"]
    assert len(fake.requests) == 3

    for req in fake.requests:
        msgs = req["messages"]
        assert msgs[0]["role"] == "system"
        # the first two complete rows, in file order, as (findings -> impression) turns
        assert [m["role"] for m in msgs[1:5]] == ["user", "assistant", "user", "assistant"]
        assert "Right pleural effusion of 2 cm." in msgs[1]["content"]
        assert msgs[2]["content"] == "Right pleural effusion."
        assert "Consolidation in the left lower lobe." in msgs[3]["content"]
        assert msgs[4]["content"] == "Left lower lobe pneumonia."
        sent = json.dumps(req)
        assert "Emphysema." not in sent  # third complete row is not an example with examples=2
        for name, clinical, *_ in ROWS:  # only findings (and example impressions) leave the process
            assert name not in sent
            assert not clinical or clinical not in sent
    targets = [_last_user_text(r) for r in fake.requests]
    assert any("8 mm nodule in the right upper lobe." in t for t in targets)
    assert any("Hiatal hernia." in t for t in targets)

    rows = _read(out)
    assert list(rows) == [r[0] for r in ROWS]  # every row kept, in order
    assert rows["train_3_a_1"]["Impressions_EN"] == "IMPRESSION<8 mm nodule in the right upper lobe.>"
    assert rows["train_6_a_1"]["Impressions_EN"] == "IMPRESSION<Hiatal hernia.>"
    assert rows["train_3_a_1"]["Impressions_EN_generated"] == "1"
    assert rows["train_6_a_1"]["ClinicalInformation_EN"] == "Secret clinical note."
    failed = rows["train_5_a_1"]
    assert failed["Impressions_EN"] == "" and failed["Impressions_EN_generated"] == "0"
    assert "400" in failed["Impressions_EN_error"]
    for name, _, _, impression in ROWS:  # rows with an impression (or without findings) untouched
        if name not in ("train_3_a_1", "train_5_a_1", "train_6_a_1"):
            assert rows[name]["Impressions_EN"] == impression
            assert rows[name]["Impressions_EN_generated"] == "0"

    # token use and cost summed over the answered requests
    assert report.output_tokens == 2 * 7 and report.input_tokens > 0
    assert report.cost_usd == pytest.approx(
        estimate_cost_usd("openai", "gpt-4o-mini", report.input_tokens, report.output_tokens), abs=1e-6
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_limit_and_examples_are_deterministic(fake, reports, tmp_path):
    settings = _settings(fake.base_url)
    report = generate_impressions(reports, tmp_path / "a.csv", settings=settings, examples=3, limit=1)
    assert (report.generated, report.skipped, report.examples) == (1, 2, 3)
    first = fake.requests[0]["messages"]
    generate_impressions(reports, tmp_path / "b.csv", settings=settings, examples=3, limit=1)
    assert fake.requests[1]["messages"] == first
    assert "Centrilobular emphysema." in first[5]["content"]
    rows = _read(tmp_path / "a.csv")
    assert rows["train_3_a_1"]["Impressions_EN_generated"] == "1"
    assert rows["train_6_a_1"]["Impressions_EN"] == "None" and rows["train_6_a_1"]["Impressions_EN_generated"] == "0"


def test_offline_provider_is_a_clear_error_and_writes_nothing(reports, tmp_path):
    out = tmp_path / "filled.csv"
    with pytest.raises(LLMProviderError, match="offline provider cannot write impressions"):
        generate_impressions(reports, out, settings=_settings(None))
    assert not out.exists()


def test_unreachable_server_fails_rows_not_the_run(reports, tmp_path):
    fake = _Fake()
    url = fake.base_url
    fake.server.shutdown()
    fake.server.server_close()
    report = generate_impressions(reports, tmp_path / "o.csv", settings=_settings(url), limit=1)
    assert report.generated == 0 and list(report.failed) == ["train_3_a_1"]
    assert _read(tmp_path / "o.csv")["train_3_a_1"]["Impressions_EN_error"]


def test_cli_clip_impressions(fake, reports, tmp_path, monkeypatch):
    from ctlens.cli.main import app

    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "LLM_PROVIDER"):
        monkeypatch.delenv(f"CTLENS_{var}", raising=False)
    monkeypatch.setenv("CTLENS_OPENAI_BASE_URL", fake.base_url)
    out = tmp_path / "filled.csv"
    args = ["clip", "impressions", "--reports", str(reports), "--out", str(out), "--provider", "openai"]
    result = CliRunner().invoke(app, [*args, "--examples", "1", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "1 of 3 missing impressions generated (1 failed, 1 over --limit)" in result.output
    assert _read(out)["train_3_a_1"]["Impressions_EN"].startswith("IMPRESSION<")

    monkeypatch.delenv("CTLENS_OPENAI_BASE_URL")
    result = CliRunner().invoke(app, ["clip", "impressions", "--reports", str(reports), "--out", str(out)])
    assert result.exit_code == 2 and "offline provider" in result.output
