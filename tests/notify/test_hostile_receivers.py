"""Threat: a webhook or Slack receiver that is slow, huge, moved or chatty holds up, floods or leaks the dispatcher.

Every receiver here is a real server on 127.0.0.1 (a raw socket server
where ``http.server`` cannot misbehave badly enough). One delivery attempt
ends within its ``timeout_seconds`` in all, even when the receiver drips
its answer a byte at a time; at most a bounded slice of a gigantic answer
is read; a redirect is never followed; an error page that quotes the
request's path never puts a Slack URL's token into the outbox, the logs or
``doctor``; a dead receiver costs one timeout per tick and never starves
the other channels; no attempt starts after the dispatch's time budget.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hitlgate.engine.decide._doctor import BackendReport, _check_notifications
from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import deliver_due, dispatch, enqueue_new
from hitlgate.engine.notify.plugins import DeliveryError, Message
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.engine.notify.slack import SlackNotifier
from hitlgate.engine.notify.webhook import post_json
from hitlgate.errors import ConfigError
from tests.notify.conftest import SECRET_ENV, Receiver, read_http_request, webhook_settings
from tests.workflow._helpers import T0, FakeClock, proposal
from tests.workflow.conftest import EngineFactory


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 that reads a request's head and then runs ``answer(conn)``."""

    url: str
    sent: int = 0
    connections: int = 0
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, RawServer], None]], RawServer]]:
    """Start raw servers whose ``answer`` callback writes whatever it likes; all stopped at teardown."""
    listeners: list[tuple[socket.socket, RawServer]] = []

    def start(answer: Callable[[socket.socket, RawServer], None]) -> RawServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        state = RawServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/services/T000/B000/s3cr3tT0ken")

        def serve() -> None:
            while not state.done.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                state.connections += 1
                with conn:
                    try:
                        read_http_request(conn)
                        answer(conn, state)
                    except OSError:
                        pass  # The client hung up on us: that is what these tests want.

        threading.Thread(target=serve, daemon=True).start()
        listeners.append((sock, state))
        return state

    yield start
    for sock, state in listeners:
        state.done.set()
        sock.close()


def _engine(make_engine: EngineFactory, url: str, *, timeout: float = 1, **extra: Any) -> Any:
    doc = webhook_settings(url, **extra)
    doc["channels"][0]["settings"]["timeout_seconds"] = timeout
    return make_engine(config={"notifications": NotificationSettings.from_dict(doc)})


def _message() -> Message:
    return Message(id="msg_1_abc", event="request.pending", at=T0, request_id="req-1", tier="dual_approval",
                   summary="rotate_api_key on svc-payments-key", url="http://127.0.0.1:8080/ui/requests/req-1")


def test_receiver_dripping_its_answer_is_cut_at_the_deadline(
    make_engine: EngineFactory, raw_server: Any, webhook_secret: str, clock: FakeClock
) -> None:
    def drip(conn: socket.socket, state: RawServer) -> None:
        # One byte every 0.2 s: a per-read timeout of 1 s never fires, for as long as the server likes.
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            if state.done.is_set():
                return
            conn.sendall(bytes([byte]))
            state.sent += 1
            time.sleep(0.2)

    server = raw_server(drip)
    engine = _engine(make_engine, server.url, timeout=1)
    engine.propose(proposal())
    started = time.monotonic()
    report = dispatch(engine, clock.now)
    took = time.monotonic() - started
    assert (report.delivered, report.retrying) == (0, 1)
    assert took < 4, f"a dripping receiver held one attempt for {took:.1f}s (deadline: 1 s)"
    [row] = outbox.list_rows(engine.store)
    assert row.status == "pending" and "Timeout: no complete answer within 1 s" in row.last_error


@pytest.mark.parametrize("status", [200, 500])
def test_receiver_answering_a_gigantic_body_is_read_only_in_part(
    make_engine: EngineFactory, raw_server: Any, webhook_secret: str, clock: FakeClock, status: int
) -> None:
    def flood(conn: socket.socket, state: RawServer) -> None:
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 2000000000\r\n\r\n".encode())
        chunk = b"A" * (1 << 20)
        # At most 256 MiB, so that a client reading everything fails this test instead of the machine.
        while state.sent < 256 << 20 and not state.done.is_set():
            conn.sendall(chunk)
            state.sent += len(chunk)

    server = raw_server(flood)
    engine = _engine(make_engine, server.url, timeout=5)
    engine.propose(proposal())
    started = time.monotonic()
    report = dispatch(engine, clock.now)
    took = time.monotonic() - started
    # What the server managed to push is what the kernel buffers on both sides hold, not the whole body.
    assert server.sent < 32 << 20, f"the dispatcher took {server.sent >> 20} MiB of a receiver's answer"
    assert took < 4, f"reading a gigantic answer took {took:.1f}s"
    [row] = outbox.list_rows(engine.store)
    if status == 200:
        assert report.delivered == 1 and row.status == "delivered"
    else:
        assert report.retrying == 1 and row.last_error.startswith("127.0.0.1:")
        assert "answered HTTP 500: AAAA" in row.last_error and len(row.last_error) < 300


def test_redirect_to_another_host_is_not_followed(
    make_engine: EngineFactory, raw_server: Any, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    def redirect(conn: socket.socket, state: RawServer) -> None:
        conn.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {receiver.url}\r\n"
                     "Content-Length: 0\r\n\r\n".encode())

    server = raw_server(redirect)
    engine = _engine(make_engine, server.url)
    engine.propose(proposal())
    assert dispatch(engine, clock.now).retrying == 1
    assert receiver.calls == 0, "the signed body was re-sent to the host a redirect named"
    [row] = outbox.list_rows(engine.store)
    assert "answered HTTP 307" in row.last_error


def test_error_page_quoting_the_slack_url_leaks_no_token(
    make_engine: EngineFactory, raw_server: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def not_found(conn: socket.socket, state: RawServer) -> None:
        # Many proxies and frameworks quote the path they could not route: here, Slack's secret.
        body = b"Cannot POST /services/T000/B000/s3cr3tT0ken (no route for /services/T000/B000/s3cr3tT0ken)"
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = raw_server(not_found)
    monkeypatch.setenv("HITLGATE_TEST_SLACK_URL", server.url)
    settings = NotificationSettings.from_dict({
        "channels": [{"name": "chat", "type": "slack",
                      "settings": {"url_env": "HITLGATE_TEST_SLACK_URL", "timeout_seconds": 2}}],
        "routes": [{"channels": ["chat"]}], "max_attempts": 1,
    })
    engine = make_engine(config={"notifications": settings})
    engine.propose(proposal())
    with caplog.at_level(logging.INFO):
        report = dispatch(engine, clock.now)
    assert report.dead == 1
    [row] = outbox.list_rows(engine.store)
    assert "answered HTTP 404" in row.last_error
    doctor = BackendReport(backend="embedded", location="-")
    _check_notifications(engine.config, doctor)
    seen = [row.last_error, *report.errors, caplog.text, *doctor.warnings,
            *(a["error"] for a in outbox.attempts_of(engine.store, row.id))]
    for text in seen:
        assert "s3cr3tT0ken" not in text and "/services/T000" not in text, text


def test_slack_url_env_holding_a_file_url_is_refused_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITLGATE_TEST_SLACK_URL", "file:///etc/passwd")
    chat = SlackNotifier.from_settings("chat", {"url_env": "HITLGATE_TEST_SLACK_URL"}, where="x", public_url="")
    with pytest.raises(DeliveryError, match=r"^the channel's URL is not an http:// or https:// URL$"):
        chat.deliver(_message())
    with pytest.raises(DeliveryError, match=r"^the channel's URL is not a valid http:// or https:// URL$"):
        post_json("http://127.0.0.1:notaport/services/x", b"{}", {}, 1)


def test_one_dead_receiver_does_not_starve_the_other_channels(
    make_engine: EngineFactory, black_hole: str, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    settings = NotificationSettings.from_dict({
        "channels": [
            {"name": "hole", "type": "webhook", "settings": {"url": black_hole, "secret_env": SECRET_ENV,
                                                             "timeout_seconds": 1}},
            {"name": "hook", "type": "webhook", "settings": {"url": receiver.url, "secret_env": SECRET_ENV}},
        ],
        "routes": [{"channels": ["hole", "hook"]}],
    })
    engine = make_engine(config={"notifications": settings})
    for _ in range(4):
        engine.propose(proposal())
    assert enqueue_new(engine, clock.now).enqueued == 8
    started = time.monotonic()
    report = deliver_due(engine, clock.now)
    took = time.monotonic() - started
    # The silent receiver costs one timeout; its other rows wait for the next tick, untouched.
    assert (report.delivered, report.retrying) == (4, 1) and len(receiver.received) == 4
    assert took < 3, f"four rows for a silent receiver held the dispatch for {took:.1f}s"
    hole_rows = [r for r in outbox.list_rows(engine.store) if r.channel == "hole"]
    assert sorted(r.attempts for r in hole_rows) == [0, 0, 0, 1]
    assert all(r.claimed_until is None for r in hole_rows)


def test_no_attempt_starts_after_the_dispatch_budget(
    make_engine: EngineFactory, raw_server: Any, webhook_secret: str, clock: FakeClock
) -> None:
    def slow_ok(conn: socket.socket, state: RawServer) -> None:
        time.sleep(0.4)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = raw_server(slow_ok)
    engine = _engine(make_engine, server.url, timeout=5)
    for _ in range(5):
        engine.propose(proposal())
    enqueue_new(engine, clock.now)
    first = deliver_due(engine, clock.now, budget_seconds=1.0)
    assert 1 <= first.delivered <= 3, first
    waiting = [r for r in outbox.list_rows(engine.store) if r.status == "pending"]
    # The rows left over were never claimed: the next dispatch (another replica's, too) takes them at once.
    assert waiting and all(r.attempts == 0 and r.claimed_until is None for r in waiting)
    second = deliver_due(engine, clock.now)
    assert first.delivered + second.delivered == 5 and server.connections == 5


@pytest.mark.parametrize(("kind", "settings", "key"), [
    ("webhook", {"url": "https://x.example/h", "secret_env": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "secret_env"),
    ("slack", {"url_env": "https://hooks.slack.com/services/T000/B000/s3cr3tT0ken"}, "url_env"),
    ("email", {"host": "h", "from": "a@b.example", "username": "u", "password_env": "hunter2-pass"},
     "password_env"),
])
def test_secret_pasted_where_its_variable_name_goes_is_refused_without_echo(
    kind: str, settings: dict[str, Any], key: str
) -> None:
    # Before: the value loaded, and every delivery then failed with "the environment variable <the secret>
    # is not set", into the outbox, the logs and doctor.
    doc = {"channels": [{"name": "c", "type": kind, "settings": settings}], "routes": [{"channels": ["c"]}]}
    with pytest.raises(ConfigError, match=rf"settings\.{key}: must be the NAME of an environment variable") as err:
        NotificationSettings.from_dict(doc)
    assert str(settings[key]) not in str(err.value)


def test_basic_auth_in_the_url_is_sent_and_never_named(
    make_engine: EngineFactory, receiver: Receiver, closed_port: str, webhook_secret: str, clock: FakeClock
) -> None:
    url = receiver.url.replace("http://", "http://hook%20user:pa%3Ass@")
    engine = _engine(make_engine, url)
    engine.propose(proposal())
    assert dispatch(engine, clock.now).delivered == 1
    assert receiver.received[0].headers["authorization"] == "Basic " + base64.b64encode(b"hook user:pa:ss").decode()
    failing = _engine(make_engine, closed_port.replace("http://", "http://hook:pa55word@"), max_attempts=1)
    failing.propose(proposal())
    dispatch(failing, clock.now)
    [row, *_] = outbox.list_rows(failing.store, status="dead")
    assert "pa55word" not in row.last_error and "hook:" not in row.last_error
