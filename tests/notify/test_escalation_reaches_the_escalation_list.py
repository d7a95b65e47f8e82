"""End to end: a request nobody approves is escalated, and the escalation list hears about it, once.

On a real SQLite file and a real PostgreSQL, with a real HTTP receiver:
the tick at the escalation threshold appends ``approval_escalated`` (the
reminders' audit event, addressed to the owner team's ``escalation``
approvers from the inventory), and the same tick's dispatch turns it into a
signed ``request.escalated`` webhook whose recipients are those people
(plus the approvers who could still vote), never the requester. Later ticks
send nothing more.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from standardwebhooks import Webhook

from hitlgate.engine.config import RemindersConfig, TierReminders
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.engine.tick import run_tick
from tests.notify.conftest import Receiver, webhook_settings
from tests.workflow._helpers import FakeClock, proposal
from tests.workflow.conftest import EngineFactory

REMINDERS = RemindersConfig(tiers={
    "single_approval": TierReminders(remind_after_minutes=10, escalate_after_minutes=30),
})


def test_escalation_event_becomes_a_notification_to_the_escalation_list(
    make_engine: EngineFactory, pack_copy: Path, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    inv = pack_copy / "data" / "inventory.yaml"
    old = "  team-platform: {name: Platform engineering}\n"
    assert old in inv.read_text()
    inv.write_text(inv.read_text().replace(old, "  team-platform: {name: Platform engineering, "
                                                "escalation: [grace, dave]}\n"))
    settings = NotificationSettings.from_dict(
        webhook_settings(receiver.url, routes=[{"channels": ["hook"], "events": ["request.escalated"]}]))
    engine = make_engine(pack=pack_copy, config={"reminders": REMINDERS, "notifications": settings})
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert req.tier == "single_approval"

    assert run_tick(engine, req.created_at + timedelta(minutes=29)).notifications["enqueued"] == 0
    report = run_tick(engine, req.created_at + timedelta(minutes=30))
    [escalation] = [n for n in report.nudges if n.kind == "escalation"]
    assert escalation.addressees == ("grace", "dave")
    [event] = [e for e in engine.audit_events(req.id) if e.kind == "approval_escalated"]

    [got] = receiver.received
    doc = Webhook(webhook_secret).verify(got.body, got.headers)
    assert doc["type"] == "request.escalated"
    data = doc["data"]
    assert (data["request_id"], data["audit_kind"], data["audit_seq"]) == (req.id, "approval_escalated", event.seq)
    names = [a["name"] for a in data["recipients"]["approvers"]]
    assert {"grace", "dave"} <= set(names) and "soc-agent-7" not in names
    assert data["recipients"]["teams"] == ["team-platform"]
    assert data["summary"].endswith(": escalated to grace, dave: still waits for approval")

    # Later ticks: no second escalation, no second notification.
    for minutes in (31, 45):
        assert run_tick(engine, req.created_at + timedelta(minutes=minutes)).nudges == ()
    assert len(receiver.received) == 1
