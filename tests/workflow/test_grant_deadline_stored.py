"""Fault: the grant's new deadline (the warrant's lifetime, from the grant) is returned but not stored.

From the grant on, a request's deadline is its warrant's: the expiry sweep
and every later read take it from the stored row. A move that reported the
new deadline without writing it would leave the approval window's deadline
in the database, and the sweep would lapse or keep the grant at the wrong time.
A naive deadline handed to the store is refused by name. The grant's audit
event names the approvals that counted and the quorum as assessed. Real SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import IllegalTransition
from tests.workflow._helpers import FakeClock, granted_warrant, proposal, signed, vote

#: What the granted event records of carol's single approval: who counted, and the quorum as assessed.
QUORUM = {"count": 1, "counted": ["carol"], "met": True, "missing": [], "missing_any": 0, "not_counted": [],
          "required": 1, "slots": [{"filled_by": "carol", "roles": ["security"], "teams": ["team-platform"]}],
          "summary": "1 of 1 approval; quorum met (carol)"}


def test_grant_stores_the_warrant_deadline_it_returns(engine: Engine, clock: FakeClock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    clock.advance(60)
    granted = vote(engine, req, "carol")
    lifetime = timedelta(seconds=engine.warrant_lifetime(req.decision))
    assert granted.status == lifecycle.GRANTED
    assert granted.expires_at == clock.now + lifetime
    assert granted.expires_at != req.expires_at
    stored = engine.get(req.id)
    assert stored.expires_at == granted.expires_at
    # The rest of the move, as returned and as stored: its time and its reason.
    assert granted.updated_at == stored.updated_at == clock.now != req.updated_at
    assert granted.status_reason == stored.status_reason != req.status_reason
    assert granted.status_reason == "1 of 1 approval; quorum met (carol)"


def test_naive_deadline_is_refused_by_name(engine: Engine, clock: FakeClock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.write() as tx, pytest.raises(ValueError, match="^expires_at must be timezone-aware$"):
        tx.transition(req.id, lifecycle.REJECTED, now=clock.now, reason="test",
                      expires_at=clock.now.replace(tzinfo=None))
    assert engine.get(req.id).status == lifecycle.PENDING


def test_naive_move_time_is_refused_by_name(engine: Engine, clock: FakeClock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.write() as tx, pytest.raises(ValueError, match="^now must be timezone-aware$"):
        tx.transition(req.id, lifecycle.REJECTED, now=clock.now.replace(tzinfo=None), reason="test")
    assert engine.get(req.id).status == lifecycle.PENDING


def test_approval_at_an_explicit_time_is_recorded_at_that_time(engine: Engine, clock: FakeClock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    at = clock.now + timedelta(seconds=42)  # Not the engine clock's time: the time given wins.
    granted = engine.approve(signed(req, "carol", at=clock.now), now=at)
    assert granted.updated_at == at
    assert [v.recorded_at for v in engine.get(req.id).votes] == [at]


def test_granted_event_names_the_approvals_that_counted_and_the_quorum(engine: Engine, clock: FakeClock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    vote(engine, req, "carol")
    granted = [e for e in engine.audit_events(req.id) if e.kind == "granted"]
    assert len(granted) == 1
    assert granted[0].payload["status"] == lifecycle.GRANTED
    assert granted[0].payload["approvals"] == ["carol"]
    assert granted[0].payload["quorum"] == QUORUM


def test_guard_consumption_at_a_naive_time_is_refused_by_name(engine: Engine, clock: FakeClock) -> None:
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _req, token = granted_warrant(engine, doc, ("carol",))
    with pytest.raises(ValueError, match="^now must be timezone-aware$"):
        engine.guard().consume(token, doc["action"], now=clock.now.replace(tzinfo=None))


def test_warrant_fetched_at_an_explicit_time_past_its_lifetime_is_refused(engine: Engine, clock: FakeClock) -> None:
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    late = clock.now + timedelta(seconds=engine.warrant_lifetime(req.decision))  # The engine clock has not moved.
    with pytest.raises(IllegalTransition, match=f"^request {req.id} was granted but its warrant lifetime ran out"):
        engine.warrant(req.id, now=late)
    assert engine.get(req.id).status == lifecycle.EXPIRED


def test_issued_warrant_is_lapsed_at_the_very_second_it_expires(engine: Engine, clock: FakeClock) -> None:
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    issued = engine.warrant(req.id)
    assert engine.warrant(req.id, now=issued.expires_at - timedelta(seconds=1)).token == issued.token
    with pytest.raises(IllegalTransition, match=f"^the warrant of request {req.id} expired unused; the request is "
                                                "now expired, propose again$"):
        engine.warrant(req.id, now=issued.expires_at)
    expired = engine.get(req.id)
    assert (expired.status, expired.status_reason) == (lifecycle.EXPIRED, "the warrant expired unused")
