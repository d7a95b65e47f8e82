"""Threat: a warrant is used after its grant was revoked."""

from __future__ import annotations

import pytest

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
    with pytest.raises(IllegalTransition):
        engine.revoke(req.id, by="alice", signed=signed(req, "alice", "reject", at=engine.now()))


def test_pending_request_can_be_revoked(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.revoke(req.id, by="carol", signed=signed(req, "carol", "reject", at=engine.now()))
    with pytest.raises(ApprovalError, match="revoked"):
        engine.approve(signed(req, "alice", at=engine.now()))
