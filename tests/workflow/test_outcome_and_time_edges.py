"""Edges of the approval path an attacker or a slow executor can reach.

- A recorded outcome is final: the sweep must not turn ``executed`` into
  ``execution_unknown`` however old the consumption is.
- A caller that passes an explicit time (a service deciding "as of" a
  request's arrival) gets that time honoured by every check, not the clock.
- An executor's outcome detail is bounded where it is stored.
- ``wait`` returns at once for a settled request and expires a pending one at
  exactly its deadline.
- A request row deleted behind the chain's back is caught by ``audit verify``.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from hitlgate.engine.approve.workflow import OUTCOME_GRACE, Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import ApprovalError, AuditChainError, InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal, signed


def test_recorded_outcome_is_never_overwritten_by_the_sweep(engine: Engine, clock) -> None:
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().execute(token, doc["action"], lambda a: None)
    assert engine.get(req.id).status == "executed"
    clock.advance(engine.config.warrant_ttl_seconds + OUTCOME_GRACE.total_seconds() + 3600)
    assert engine.expire_due() == []
    assert engine.get(req.id).status == "executed"


def test_guard_honours_an_explicit_time(engine: Engine, clock) -> None:
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    ran: list[object] = []
    late = clock.now + timedelta(seconds=engine.warrant_lifetime(req.decision) + 1)
    with pytest.raises(InvalidWarrant, match="expired"):
        engine.guard().execute(token, doc["action"], ran.append, now=late)
    assert ran == []


def test_reject_honours_an_explicit_time(engine: Engine, clock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    late = req.expires_at + timedelta(seconds=1)
    with pytest.raises(ApprovalError, match="expired"):
        engine.reject(signed(req, "carol", "reject", at=clock.now), now=late)


def test_outcome_detail_is_bounded_where_it_is_stored(engine: Engine) -> None:
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    grant = guard.consume(token, doc["action"])
    guard.record(grant, "execution_failed", "x" * 5000)
    after = engine.get(req.id)
    assert (after.status, after.status_reason) == ("execution_failed", "x" * 500)
    last = engine.audit_events(req.id)[-1]
    assert last.kind == "execution_failed"
    assert (last.payload["jti"], last.payload["detail"]) == (grant.jti, "x" * 2000)


def test_wait_returns_a_settled_request_at_once(engine: Engine) -> None:
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, _ = granted_warrant(engine, doc, ("carol",))
    started = time.monotonic()
    assert engine.wait(req.id, timeout=60).status == "granted"
    assert time.monotonic() - started < 30  # Not the 60 s timeout.


def test_wait_expires_a_pending_request_at_exactly_its_deadline(engine: Engine, clock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    clock.now = req.expires_at - timedelta(seconds=1)
    assert engine.wait(req.id, timeout=0).status == "pending"
    clock.now = req.expires_at
    assert engine.wait(req.id, timeout=0).status == "expired"
    assert [e.kind for e in engine.audit_events(req.id)][-1] == "expired"


def test_request_row_deleted_behind_the_chain_is_caught(engine: Engine) -> None:
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, _ = granted_warrant(engine, doc, ("carol",))
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    with engine.store.engine.begin() as conn:
        # An attacker hides the request: its rows go, its chain events stay.
        for tbl in (t.consumed, t.warrants, t.votes, t.requests):
            col = tbl.c.id if tbl is t.requests else tbl.c.request_id
            conn.execute(tbl.delete().where(col == req.id))
    with pytest.raises(AuditChainError, match=req.id):
        engine.verify_audit()


def test_wait_returns_when_a_vote_arrives_before_its_timeout(engine: Engine, clock) -> None:
    # An agent blocks in wait() while an approver decides elsewhere; the
    # vote (here from another thread) must end the wait with the decision.
    import threading

    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    statement = signed(req, "carol", at=clock.now)

    def approve_soon() -> None:
        time.sleep(0.3)
        engine.approve(statement)

    voter = threading.Thread(target=approve_soon, daemon=True)
    voter.start()
    assert engine.wait(req.id, timeout=60, poll_seconds=0.05).status == "granted"
    voter.join(timeout=30)
