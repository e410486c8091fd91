"""Fake Anthropic, OpenAI and Gemini servers on 127.0.0.1 that speak the providers' streaming wire protocols.

Each is a real HTTP server in a thread; the real SDKs reach it through ``base_url``. Every request is recorded
(path, headers, raw body) so tests can check what left the process.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = ["The images show ", "a right upper lobe ", "mass (offline fake)."]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class FakeServer:
    kind: str
    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}" + ("/v1" if self.kind == "openai" else "")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _sse(handler: BaseHTTPRequestHandler, events: list[tuple[str | None, str]]) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Connection", "close")
    handler.end_headers()
    for event, data in events:
        chunk = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        handler.wfile.write(chunk.encode())
        handler.wfile.flush()
    handler.close_connection = True


def input_tokens_for(body: bytes) -> int:
    """What the fakes bill for a request: one token per 100 body bytes (deterministic, checkable)."""
    return max(1, len(body) // 100)


def _anthropic(handler, body: bytes) -> None:
    req = json.loads(body)
    tokens = input_tokens_for(body)
    msg = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": req["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": tokens, "output_tokens": 1},
    }
    events = [("message_start", json.dumps({"type": "message_start", "message": msg}))]
    events.append(
        (
            "content_block_start",
            json.dumps({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )
    )
    events.append(("ping", json.dumps({"type": "ping"})))
    for piece in ANSWER:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append(("content_block_delta", json.dumps(delta)))
    events.append(("content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})))
    events.append(
        (
            "message_delta",
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 42},
                }
            ),
        )
    )
    events.append(("message_stop", json.dumps({"type": "message_stop"})))
    _sse(handler, events)


def _openai(handler, body: bytes) -> None:
    req = json.loads(body)
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": req["model"]}
    events: list[tuple[str | None, str]] = []
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    events.append((None, json.dumps(base | {"choices": [first]})))
    for piece in ANSWER:
        choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        events.append((None, json.dumps(base | {"choices": [choice]})))
    events.append((None, json.dumps(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})))
    if (req.get("stream_options") or {}).get("include_usage"):
        tokens = input_tokens_for(body)
        usage = {"prompt_tokens": tokens, "completion_tokens": 42, "total_tokens": tokens + 42}
        events.append((None, json.dumps(base | {"choices": [], "usage": usage})))
    events.append((None, "[DONE]"))
    _sse(handler, events)


def _gemini(handler, body: bytes) -> None:
    tokens = input_tokens_for(body)
    events: list[tuple[str | None, str]] = []
    for i, piece in enumerate(ANSWER):
        chunk = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": tokens, "candidatesTokenCount": 14 * (i + 1)},
            "modelVersion": "gemini-fake",
        }
        if i == len(ANSWER) - 1:
            chunk["candidates"][0]["finishReason"] = "STOP"
        events.append((None, json.dumps(chunk)))
    _sse(handler, events)


ROUTES = {
    "anthropic": ("/v1/messages", _anthropic),
    "openai": ("/v1/chat/completions", _openai),
    "gemini": (":streamGenerateContent", _gemini),
}


def start_fake(kind: str) -> FakeServer:
    """Start a fake ``anthropic``, ``openai`` or ``gemini`` server on a free port of 127.0.0.1."""
    route, respond = ROUTES[kind]
    holder: dict[str, FakeServer] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            holder["fake"].requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
            path = self.path.split("?")[0]
            if not (path == route if route.startswith("/") else path.endswith(route)):
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                payload = b'{"error": {"type": "not_found_error", "message": "no such route"}}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            respond(self, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake = FakeServer(kind, server)
    holder["fake"] = fake
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake
