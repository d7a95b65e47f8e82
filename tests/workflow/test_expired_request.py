"""Threat: an approval arrives after the request's approval window closed, or a stale grant is used."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.errors import ApprovalError, IllegalTransition, InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal, signed, vote


def test_approval_after_the_window_is_refused_and_the_request_expires(engine, clock):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    clock.advance(req.decision.ttl_seconds + 1)
    with pytest.raises(ApprovalError, match="expired"):
        engine.approve(signed(req, "carol", at=clock.now))
    after = engine.get(req.id)
    assert after.status == "expired" and after.votes == ()
    assert [e.kind for e in engine.audit_events(req.id)][-1] == "expired"


def test_expire_due_expires_pending_requests(engine, clock):
    old = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    clock.advance(old.decision.ttl_seconds - 10)
    young = engine.propose(proposal("suspend_service_account", "svc-reporting"))
    clock.advance(20)
    changed = engine.expire_due()
    assert [r.id for r in changed] == [old.id]
    assert engine.get(old.id).status == "expired"
    assert engine.get(young.id).status == "pending"
    with pytest.raises(ApprovalError, match=f"request {old.id} is expired; it takes no more votes"):
        vote(engine, old, "carol")


def test_unused_warrant_lapses_and_is_not_reissued(engine, clock):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    clock.advance(engine.warrant_lifetime(req.decision) + 1)
    with pytest.raises(InvalidWarrant, match="expired"):
        engine.guard().execute(token, doc["action"], lambda a: None)
    with pytest.raises(IllegalTransition, match="expired"):
        engine.warrant(req.id)
    assert engine.get(req.id).status == "expired"


def test_stale_grant_gets_no_warrant_after_its_window(engine, clock):
    # Granted, but nobody fetched the warrant before the request's window
    # closed. `expire_due` would expire it; fetching the warrant late must
    # not mint a fresh one from an old grant just because no sweep ran yet.
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    assert req.status == "granted"
    clock.advance(req.decision.ttl_seconds + 1)
    with pytest.raises(IllegalTransition, match="expired"):
        engine.warrant(req.id)
    assert engine.get(req.id).status == "expired"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None
    assert [e.kind for e in engine.audit_events(req.id)][-1] == "expired"


def test_pending_request_expires_at_exactly_its_deadline(engine, clock):
    # The same instant the approval path calls expired (now >= expires_at): the sweep must agree, or a
    # request nobody can approve any more would still show as pending, and be counted as waiting.
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    other = engine.propose(proposal("suspend_service_account", "svc-reporting"))
    clock.now = req.expires_at - timedelta(microseconds=1)
    assert engine.expire_due() == [] and engine.count("pending") == 2
    clock.now = req.expires_at
    assert sorted(r.id for r in engine.expire_due()) == sorted([req.id, other.id])
    assert engine.count("pending") == 0 and engine.count("expired") == 2
