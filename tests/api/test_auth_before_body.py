"""Authentication before the body: a keyed route answers 401 to a request without a valid key before reading any of
its body, so nothing is spooled to disk (the form parser would otherwise store hundreds of MiB first)."""

from __future__ import annotations

import socket
import threading
import time

import hostile
import pytest
from live_server import service_settings, start_server

MIB = 1 << 20
BOUNDARY = "ctlensboundary"


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    srv = start_server(service_settings(tmp_path_factory.mktemp("gated")))
    yield srv
    srv.stop()


def _head(srv, path: str, length: int, key: str | None) -> bytes:
    host = srv.base_url.removeprefix("http://")
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {length}",
    ]
    lines += [f"Authorization: Bearer {key}"] if key else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _part_head(field: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def _send_quietly(sock: socket.socket, head: bytes, body_size: int, field: str) -> None:
    try:
        sock.sendall(head + _part_head(field))
        piece = bytes(MIB)
        for _ in range(body_size // MIB):
            sock.sendall(piece)
    except OSError:  # the server answered and closed: what we want
        pass


@pytest.mark.parametrize(
    "path, field", [("/process-image", "file"), ("/api/chat", "images"), ("/api/analyze", "files")]
)
@pytest.mark.parametrize("key", [None, "ctl_not-a-key"])
def test_401_comes_before_any_body_byte(gated, path, field, key):
    with socket.create_connection(("127.0.0.1", int(gated.base_url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(_head(gated, path, 200 * MIB, key))  # headers only: a server reading the body would wait
        assert _status(sock) == 401


@pytest.mark.parametrize("path, field", [("/process-image", "file"), ("/api/chat", "images")])
def test_200_mib_without_a_key_leaves_the_disk_alone(gated, path, field):
    size = 200 * MIB
    with hostile.Watcher(gated.ctx.root) as watch:
        with socket.create_connection(("127.0.0.1", int(gated.base_url.rsplit(":", 1)[1])), timeout=30) as sock:
            sender = threading.Thread(target=_send_quietly, args=(sock, _head(gated, path, size, None), size, field))
            sender.start()
            status = _status(sock)
            sender.join(60)
        time.sleep(0.2)
    assert status == 401
    assert watch.disk_growth < 100 * MIB, watch.disk_growth
    assert not any(gated.ctx.tmp_dir.iterdir())


def test_keys_still_work_through_the_gate(gated):
    client = gated.client()
    assert client.get("/api/me").status_code == 200
    assert gated.client(key=None).get("/healthz").status_code == 200  # no key needed there
    assert gated.client(key=None).get("/api/nope").status_code == 404
    key = gated.ctx.create_key("soon revoked")
    me = gated.client(key=key).get("/api/me").json()
    assert gated.ctx.store.revoke_key(me["key_id"])
    r = gated.client(key=key).post("/process-image", files={"file": ("a.png", b"x" * 1000)})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/problem+json"
