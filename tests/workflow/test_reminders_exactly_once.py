"""Threat: approvers are reminded twice (or never), an escalation goes out per replica, settled requests nag.

:func:`hitlgate.engine.tick.run_tick` with an injected clock, on a real
SQLite file and a real PostgreSQL: each threshold (reminder, escalation,
expiry warning) yields exactly one audit event per pending request, at the
right minute, addressed to the right people; granted, rejected and expired
requests get nothing; and two engines on one database ticking at the same
instant from many threads still write each event once.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from hitlgate.engine.config import RemindersConfig, TierReminders
from hitlgate.engine.ledger import lease
from hitlgate.engine.tick import LEASE_NAME, run_tick, run_tick_under_lease
from tests.workflow._helpers import proposal, vote

SINGLE = ("suspend_service_account", "svc-ci-runner")  # single approval, owner team-platform, 60 min window
NUDGE_KINDS = ("approval_reminder_sent", "approval_escalated", "approval_expiring_warned")
REMINDERS = RemindersConfig(tiers={
    "single_approval": TierReminders(remind_after_minutes=10, escalate_after_minutes=30, warn_before_expiry_minutes=15),
})


@pytest.fixture
def escalating_pack(pack_copy: Path) -> Path:
    """The bundled pack with escalation lists: team-platform escalates to grace and dave."""
    inv = pack_copy / "data" / "inventory.yaml"
    text = inv.read_text()
    old = "  team-platform: {name: Platform engineering}\n"
    assert old in text
    inv.write_text(text.replace(old, "  team-platform: {name: Platform engineering, escalation: [grace, dave]}\n"))
    return pack_copy


def _nudges(engine, request_id=None):
    return [(e.request_id, e.kind, e.payload) for e in engine.audit_events(request_id) if e.kind in NUDGE_KINDS]


def test_each_threshold_fires_once_at_its_minute_and_never_for_settled_requests(make_engine, escalating_pack, clock):
    engine = make_engine(pack=escalating_pack, config={"reminders": REMINDERS})
    waiting = engine.propose(proposal(*SINGLE))
    granted = engine.propose(proposal(*SINGLE))
    rejected = engine.propose(proposal(*SINGLE))
    clock.advance(60)
    assert vote(engine, granted, "carol").status == "granted"
    assert vote(engine, rejected, "alice", "reject").status == "rejected"

    clock.now = waiting.created_at + timedelta(minutes=10) - timedelta(seconds=1)
    assert run_tick(engine).nudges == ()

    clock.now = waiting.created_at + timedelta(minutes=10)
    report = run_tick(engine)
    assert [(n.request_id, n.kind, n.addressees) for n in report.nudges] == [
        (waiting.id, "reminder", ("alice", "carol", "erin", "grace")),
    ]
    [(rid, kind, payload)] = _nudges(engine)
    assert (rid, kind) == (waiting.id, "approval_reminder_sent")
    assert payload["addressees"] == ["alice", "carol", "erin", "grace"]
    assert payload["tier"] == "single_approval" and payload["after_minutes"] == 10
    assert payload["status"] == "pending" and payload["action_digest"] == waiting.action_digest
    assert "missing: someone with the role security or a member of team-platform" in payload["quorum"]
    # The same minute again, and every minute up to the escalation: nothing new.
    for minute in range(10, 30):
        clock.now = waiting.created_at + timedelta(minutes=minute, seconds=59)
        assert run_tick(engine).nudges == ()

    clock.now = waiting.created_at + timedelta(minutes=30)
    [escalation] = run_tick(engine).nudges
    assert (escalation.request_id, escalation.kind, escalation.addressees) == (waiting.id, "escalation",
                                                                              ("grace", "dave"))
    assert _nudges(engine)[-1][2]["teams"] == ["team-platform"]

    clock.now = waiting.expires_at - timedelta(minutes=15, seconds=1)
    assert run_tick(engine).nudges == ()
    clock.now = waiting.expires_at - timedelta(minutes=15)
    [warning] = run_tick(engine).nudges
    assert (warning.request_id, warning.kind) == (waiting.id, "expiring")
    assert _nudges(engine)[-1][2]["expires_at"] == waiting.expires_at.isoformat()

    clock.now = waiting.expires_at
    report = run_tick(engine)
    assert report.expired == (waiting.id,) and report.nudges == ()
    assert run_tick(engine).expired == ()
    assert Counter(k for _, k, _ in _nudges(engine)) == {k: 1 for k in NUDGE_KINDS}
    assert _nudges(engine, granted.id) == [] and _nudges(engine, rejected.id) == []
    engine.verify_audit()


def test_reminder_skips_who_voted_and_the_requester(make_engine, escalating_pack, clock):
    # Dual approval: erin approved (she fills one slot); the reminder goes to
    # those who could fill the slot still open, not to erin, never to the requester.
    reminders = RemindersConfig(tiers={"dual_approval": TierReminders(remind_after_minutes=5)})
    engine = make_engine(pack=escalating_pack, config={"reminders": reminders})
    doc = proposal("rotate_api_key", "svc-payments-key")
    doc["requester"] = {"id": "alice", "kind": "human"}
    req = engine.propose(doc)
    assert req.tier == "dual_approval"
    vote(engine, req, "erin")
    clock.advance(5 * 60)
    [n] = run_tick(engine).nudges
    assert "erin" not in n.addressees and "alice" not in n.addressees
    assert n.addressees == ("bob",)  # erin fills the security slot; only team-payments is still open.


def test_escalation_with_no_list_is_recorded_once_with_nobody(make_engine, pack_copy, clock):
    reminders = RemindersConfig(tiers={"single_approval": TierReminders(escalate_after_minutes=1)})
    engine = make_engine(pack=pack_copy, config={"reminders": reminders})
    req = engine.propose(proposal(*SINGLE))
    clock.advance(120)
    [n] = run_tick(engine).nudges
    assert (n.request_id, n.kind, n.addressees) == (req.id, "escalation", ())
    assert run_tick(engine).nudges == ()


def test_late_tick_sends_each_nudge_once_not_once_per_missed_tick(make_engine, escalating_pack, clock):
    # Nobody ticked for 50 minutes: the reminder, escalation and warning are all due; each goes out once.
    engine = make_engine(pack=escalating_pack, config={"reminders": REMINDERS})
    req = engine.propose(proposal(*SINGLE))
    clock.advance(50 * 60)
    assert sorted(n.kind for n in run_tick(engine).nudges) == ["escalation", "expiring", "reminder"]
    assert run_tick(engine).nudges == ()
    assert len(_nudges(engine, req.id)) == 3


def test_without_reminders_config_a_tick_only_expires(make_engine, escalating_pack, clock):
    engine = make_engine(pack=escalating_pack)
    req = engine.propose(proposal(*SINGLE))
    clock.advance(59 * 60)
    assert run_tick(engine).nudges == ()
    clock.now = req.expires_at
    assert run_tick(engine).expired == (req.id,)


def test_two_engines_ticking_at_once_write_each_event_once(make_engine, escalating_pack, clock):
    # Two replicas (two engines, two connection pools) on one database, four
    # threads each, all ticking at the same instants, without the lease: the
    # database's unique key and the write lock alone keep it to one each.
    one = make_engine(pack=escalating_pack, config={"reminders": REMINDERS})
    two = make_engine(pack=escalating_pack, config={"reminders": REMINDERS})
    reqs = [one.propose(proposal(*SINGLE)) for _ in range(6)]
    for minutes in (10, 30, 45):
        at = reqs[0].created_at + timedelta(minutes=minutes)
        barrier = threading.Barrier(8, timeout=60)
        errors: list[BaseException] = []

        def tick(engine, at=at, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                run_tick(engine, at)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below.
                errors.append(exc)

        threads = [threading.Thread(target=tick, args=(e,), daemon=True) for e in (one, two) * 4]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not any(th.is_alive() for th in threads), "a ticking thread hung"
        assert errors == []
    counts = Counter((rid, kind) for rid, kind, _ in _nudges(one))
    assert counts == {(r.id, k): 1 for r in reqs for k in NUDGE_KINDS}
    one.verify_audit()


def test_two_replicas_under_the_lease_one_ticks(make_engine, escalating_pack, clock):
    one = make_engine(pack=escalating_pack, config={"reminders": REMINDERS})
    two = make_engine(pack=escalating_pack, config={"reminders": REMINDERS})
    req = one.propose(proposal(*SINGLE))
    clock.advance(10 * 60)
    first = run_tick_under_lease(one, "replica-1")
    second = run_tick_under_lease(two, "replica-2")
    assert (first.ran, [n.kind for n in first.nudges]) == (True, ["reminder"])
    assert (second.ran, second.holder, second.nudges) == (False, "replica-1", ())
    # replica-1 dies; once its lease lapses, replica-2 takes over and sends the next nudge.
    clock.advance(20 * 60)
    took = run_tick_under_lease(two, "replica-2")
    assert took.ran and [n.kind for n in took.nudges] == ["escalation"]
    assert lease.current(two.store, LEASE_NAME).holder == "replica-2"
    assert Counter(k for _, k, _ in _nudges(one, req.id)) == {"approval_reminder_sent": 1, "approval_escalated": 1}
