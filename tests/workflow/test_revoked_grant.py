"""Threat: a warrant is used after its grant was revoked."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import ApprovalError, IllegalTransition, InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal, signed


def test_warrant_of_a_revoked_grant_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    revoked = engine.revoke(req.id, by="alice", signed=signed(req, "alice", "reject", at=engine.now()))
    assert revoked.status == "revoked"
    ran = []
    with pytest.raises(InvalidWarrant, match="revoked"):
        engine.guard().execute(token, doc["action"], ran.append)
    assert not ran
    kinds = [e.kind for e in engine.audit_events(req.id)]
    assert "revoked" in kinds and "consumed" not in kinds


def test_revocation_needs_an_eligible_signer(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, _token = granted_warrant(engine, doc, ("carol",))
    with pytest.raises(ApprovalError, match="may not revoke"):
        engine.revoke(req.id, by="frank", signed=signed(req, "frank", "reject", at=engine.now()))
    with pytest.raises(ApprovalError, match="signed by"):
        engine.revoke(req.id, by="alice", signed=signed(req, "grace", "reject", at=engine.now()))
    assert engine.get(req.id).status == "granted"


def test_revocation_after_the_warrant_was_used_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().execute(token, doc["action"], lambda a: None)
    with pytest.raises(IllegalTransition, match="the request is executed, a final state; it cannot become revoked"):
        engine.revoke(req.id, by="alice", signed=signed(req, "alice", "reject", at=engine.now()))


def test_pending_request_can_be_revoked(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.revoke(req.id, by="carol", signed=signed(req, "carol", "reject", at=engine.now()))
    with pytest.raises(ApprovalError, match="revoked"):
        engine.approve(signed(req, "alice", at=engine.now()))


def test_revocation_while_the_action_runs_is_refused(engine):
    # The guard consumed the warrant and the executor is still running (no
    # outcome yet): the request is still "granted", but it is too late to
    # withdraw it, and the refusal must say so rather than pretend it worked.
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().consume(token, doc["action"])
    assert engine.get(req.id).status == "granted"
    with pytest.raises(IllegalTransition, match=f"request {req.id}'s warrant was already used; the action is running "
                                                "or ran, revocation is too late"):
        engine.revoke(req.id, by="alice", signed=signed(req, "alice", "reject", at=engine.now()))
    assert engine.get(req.id).status == "granted"


def test_revocation_records_the_withdrawn_warrant(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    with engine.store.read() as tx:
        jti = tx.warrant_for(req.id).jti
    statement = signed(req, "alice", "reject", at=engine.now())
    assert engine.revoke(req.id, by="alice", signed=statement).status_reason == "revoked by alice"
    revoked = [e for e in engine.audit_events(req.id) if e.kind == "revoked"]
    assert [(e.payload["by"], e.payload["warrant_jti"], e.payload["signed"]) for e in revoked] == [
        ("alice", jti, statement.to_dict())
    ]
    with engine.store.engine.connect() as conn:
        row = conn.execute(sa.select(t.revocations).where(t.revocations.c.request_id == req.id)).mappings().one()
    assert (row["revoked_by"], json.loads(row["statement"])) == ("alice", statement.to_dict())


def test_revocation_is_judged_at_the_time_given(engine, clock):
    # revoke(now=...) decides at that time, not at the engine clock: a
    # statement dated six minutes ahead of the clock is fine at that time.
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    later = clock.now + timedelta(minutes=6)
    s = signed(req, "alice", "reject", at=later)
    assert engine.revoke(req.id, by="alice", signed=s, now=later).status == "revoked"
    assert engine.get(req.id).updated_at == later
