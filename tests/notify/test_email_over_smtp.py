"""The email channel against a real local SMTP server (aiosmtpd): recipients from the configuration and
the inventory's approver emails, a console link, no header injection, and STARTTLS never downgraded."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import dispatch
from hitlgate.engine.notify.plugins import DeliveryError, Message, Recipient
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.engine.notify.smtp import EmailNotifier, compose
from hitlgate.errors import ConfigError
from tests.workflow._helpers import T0, FakeClock, proposal
from tests.workflow.conftest import EngineFactory


@dataclass
class Mailbox:
    """What the SMTP server received."""

    host: str
    port: int
    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name.
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread)."""
    # aiosmtpd's start() connects to the port it was given to check the server is up, so it needs a real one.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    box = Mailbox("127.0.0.1", port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box
    controller.stop()


def _settings(box: Mailbox, **extra: Any) -> NotificationSettings:
    return NotificationSettings.from_dict({
        "channels": [{"name": "mail", "type": "email", "settings": {
            "host": box.host, "port": box.port, "from": "hitlgate@example.com", "to": ["soc@example.com"],
            "timeout_seconds": 5, **extra}}],
        "routes": [{"channels": ["mail"], "events": ["request.pending"]}],
        "max_attempts": 1,
    }, public_url="https://hitlgate.example.com")


def _with_emails(pack: Path) -> Path:
    inv = pack / "data" / "inventory.yaml"
    text = inv.read_text()
    for name in ("bob", "erin"):
        text = text.replace(f"\n  {name}:\n", f"\n  {name}:\n    email: {name}@payments.example.com\n", 1)
    inv.write_text(text)
    return pack


def test_mail_reaches_configured_and_inventory_addresses(
    make_engine: EngineFactory, pack_copy: Path, smtp_server: Mailbox, clock: FakeClock
) -> None:
    engine = make_engine(pack=_with_emails(pack_copy), config={"notifications": _settings(smtp_server)})
    req = engine.propose(proposal())
    assert dispatch(engine, clock.now).delivered == 1
    [(sender, rcpts, raw)] = smtp_server.mails
    assert sender == "hitlgate@example.com"
    # The configured address, then the eligible approvers who have an email (alice and grace have none).
    assert rcpts == ["soc@example.com", "bob@payments.example.com", "erin@payments.example.com"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Subject"].startswith("[hitlgate] request.pending: rotate_api_key on svc-payments-key")
    body = mail.get_content()
    assert f"https://hitlgate.example.com/ui/requests/{req.id}" in body
    assert "Approvers: alice, bob, erin, grace" in body


def test_starttls_required_is_never_downgraded_to_clear_text(
    make_engine: EngineFactory, smtp_server: Mailbox, clock: FakeClock
) -> None:
    # This server offers no STARTTLS: the mail must not go out in the clear.
    engine = make_engine(config={"notifications": _settings(smtp_server, starttls=True)})
    engine.propose(proposal())
    assert dispatch(engine, clock.now).dead == 1
    assert smtp_server.mails == []
    [row] = outbox.list_rows(engine.store, status="dead")
    assert "STARTTLS extension not supported by server" in row.last_error


def test_line_breaks_cannot_add_a_header() -> None:
    message = Message(id="msg_1_x", event="request.failed", at=T0, request_id="req-1", tier="single_approval",
                      summary="execution failed: boom\r\nBcc: attacker@evil.example", url="https://h/ui/requests/req-1")
    mail = compose(message, sender="hitlgate@example.com", to=("soc@example.com",))
    assert mail["Bcc"] is None
    assert "Bcc: attacker@evil.example" in mail["Subject"]  # Kept as text on the one subject line.
    assert "\n" not in mail["Subject"] and "\r" not in mail["Subject"]


def test_outbox_row_smuggling_a_second_recipient_is_left_out(smtp_server: Mailbox) -> None:
    # The inventory refuses such an email when it loads; a message row edited in the database does not pass
    # through that check, so the channel keeps only bare addresses itself.
    mail = EmailNotifier.from_settings("mail", {"host": smtp_server.host, "port": smtp_server.port,
                                                "from": "hitlgate@example.com", "to": ["soc@example.com"]},
                                       where="x", public_url="")
    message = Message(id="msg_1_x", event="request.pending", at=T0, request_id="req-1", tier="single_approval",
                      summary="s", url="https://h/ui/requests/req-1",
                      approvers=(Recipient("bob", "bob@payments.example.com, eve@evil.example"),
                                 Recipient("erin", "Erin <eve@evil.example>"),
                                 Recipient("grace", "grace@payments.example.com")))
    mail.deliver(message)
    [(_, rcpts, raw)] = smtp_server.mails
    assert rcpts == ["soc@example.com", "grace@payments.example.com"]
    assert b"evil" not in raw


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("to", ["soc@example.com, eve@evil.example"], r"x\.to: must be a list of email addresses"),
    ("from", "Hitlgate <hitlgate@example.com>", r"x\.from: must be one email address"),
])
def test_configured_address_lists_are_refused(key: str, value: Any, problem: str) -> None:
    settings = {"host": "127.0.0.1", "from": "hitlgate@example.com", "to": ["soc@example.com"], key: value}
    with pytest.raises(ConfigError, match=problem):
        EmailNotifier.from_settings("mail", settings, where="x", public_url="")


def test_smtp_server_dripping_its_greeting_is_cut_at_the_deadline() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            # One byte every 0.2 s: each read gets something before a 1 s timeout, for ever.
            for byte in b"220-" + b"x" * 1000:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    threading.Thread(target=drip, daemon=True).start()
    mail = EmailNotifier.from_settings("mail", {
        "host": "127.0.0.1", "port": listener.getsockname()[1], "from": "hitlgate@example.com",
        "to": ["soc@example.com"], "timeout_seconds": 1}, where="x", public_url="")
    message = Message(id="msg_1_x", event="request.pending", at=T0, request_id="req-1", tier="single_approval",
                      summary="s", url="https://h/ui/requests/req-1")
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match=r"Timeout: the conversation took longer than 1 s"):
            mail.deliver(message)
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < 4


def test_password_over_a_clear_connection_is_refused() -> None:
    settings = {"host": "smtp.example.com", "from": "hitlgate@example.com", "to": ["soc@example.com"],
                "username": "hitlgate", "password_env": "HITLGATE_SMTP_PASSWORD"}
    with pytest.raises(ConfigError, match=r"x\.starttls: must be true when username and password_env are set"):
        EmailNotifier.from_settings("mail", settings, where="x", public_url="")
    # With STARTTLS, or to a relay on this host, it is allowed.
    assert EmailNotifier.from_settings("mail", {**settings, "starttls": True}, where="x", public_url="").starttls
    assert EmailNotifier.from_settings("mail", {**settings, "host": "127.0.0.1"}, where="x", public_url="").username
