"""Fixtures of the notification tests: real receivers (HTTP and SMTP) on localhost, engines on both databases.

The store-backed tests run on SQLite and on PostgreSQL through the workflow
tests' ``db_url`` and ``make_engine`` fixtures (imported below, so both
folders share one way to build an engine). Receivers are real servers in a
thread of the test process: ``http.server`` for webhooks and Slack,
``aiosmtpd`` for mail.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.workflow.conftest import clock, db_url, make_engine  # noqa: F401

#: A Standard Webhooks secret for the tests (whsec_ + base64 of 24 bytes).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_ENV = "HITLGATE_TEST_WEBHOOK_SECRET"


def read_http_request(conn: socket.socket) -> bool:
    """Read one HTTP request's head and its body (Content-Length) from a raw socket, so the client waits.

    Returns whether the whole head arrived (the body is read as far as the client sends it).
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return True


@dataclass
class Received:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP receiver; it answers ``fail_first`` requests with 500, then 204."""

    url: str
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self) -> list[Received]:
        """The requests it accepted (answered 2xx)."""
        return self.received[self.fail_first:]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1, in a thread."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name.
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.calls += 1
                failing = state.calls <= state.fail_first
                state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A URL whose server accepts the connection and never answers (the worst receiver: only timeouts end it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sock.close()


@pytest.fixture
def closed_port() -> str:
    """A URL nothing listens on (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The webhook secret, in the environment variable the channel names."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET


def webhook_settings(url: str, *, routes: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A ``notifications:`` section with one webhook channel ``hook`` and by default one catch-all route."""
    return {
        "channels": [{"name": "hook", "type": "webhook",
                      "settings": {"url": url, "secret_env": SECRET_ENV, "timeout_seconds": 2}}],
        "routes": routes if routes is not None else [{"channels": ["hook"]}],
        **extra,
    }
