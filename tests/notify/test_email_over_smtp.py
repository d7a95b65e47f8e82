"""The email channel against a real local SMTP server (aiosmtpd): recipients from the configuration and
the inventory's approver emails, a console link, no header injection, and STARTTLS never downgraded."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import dispatch
from hitlgate.engine.notify.plugins import Message
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.engine.notify.smtp import compose
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
