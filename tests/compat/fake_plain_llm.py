"""Fake Anthropic Messages and OpenAI Chat Completions servers on 127.0.0.1, answering NON-streaming requests.

Seed 000's examples call ``client.messages.create(...)`` and ``client.chat.completions.create(...)`` without
``stream=True``: the real SDKs then expect one JSON body in the provider's wire format. Each request is recorded.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "No pulmonary nodule is seen (offline fake)."


@dataclass
class PlainFake:
    kind: str
    server: ThreadingHTTPServer
    requests: list[tuple[str, dict[str, str], dict]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}" + ("/v1" if self.kind == "openai" else "")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _anthropic(req: dict) -> dict:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": req["model"],
        "content": [{"type": "text", "text": ANSWER}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 9},
    }


def _openai(req: dict) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": req["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19},
    }


ROUTES = {"anthropic": ("/v1/messages", _anthropic), "openai": ("/v1/chat/completions", _openai)}


def start_plain_fake(kind: str) -> PlainFake:
    """Start a fake ``anthropic`` or ``openai`` server (non-streaming JSON answers) on a free loopback port."""
    route, answer = ROUTES[kind]
    holder: dict[str, PlainFake] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            req = json.loads(body or b"{}")
            holder["fake"].requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, req))
            ok = self.path.split("?")[0] == route and not req.get("stream")
            out = json.dumps(answer(req) if ok else {"error": {"type": "not_found_error", "message": "no"}}).encode()
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake = PlainFake(kind, server)
    holder["fake"] = fake
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake
