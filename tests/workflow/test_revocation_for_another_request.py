"""Threat: a revocation signed for one request or action is used to withdraw another.

A revocation is a signed ``reject`` statement bound to one request id and
one action digest. Replaying it against another request (even one for the
very same action) or presenting one signed over another action must be
refused, and must leave the targeted request as it was.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.errors import ApprovalError, InputError
from tests.workflow._helpers import demo_key, granted_warrant, proposal, signed


def test_revocation_of_request_a_cannot_revoke_request_b(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    a, _ = granted_warrant(engine, doc, ("carol",))
    b, token_b = granted_warrant(engine, doc, ("carol",))
    assert a.action_digest == b.action_digest
    for_a = signed(a, "alice", "reject", at=engine.now())
    with pytest.raises(ApprovalError, match=f"the revocation is for request {a.id}, not {b.id}"):
        engine.revoke(b.id, by="alice", signed=for_a)
    assert engine.get(b.id).status == "granted"
    assert "revoked" not in [e.kind for e in engine.audit_events(b.id)]
    # B's warrant still runs: nothing was withdrawn.
    assert engine.guard().execute(token_b, doc["action"], lambda a: "ran") == "ran"


def test_revocation_signed_over_another_action_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, _ = granted_warrant(engine, doc, ("carol",))
    other = engine.propose(proposal("suspend_service_account", "svc-reporting"))
    statement = Statement(req.id, other.action_digest, "reject", "alice", engine.now())
    with pytest.raises(ApprovalError, match=f"the revocation is for action {other.action_digest}, not "
                                            f"{req.action_digest}"):
        engine.revoke(req.id, by="alice", signed=sign(statement, demo_key("alice")))
    assert engine.get(req.id).status == "granted"


def test_revocation_must_be_a_signed_rejection(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    refused = "this statement's verdict is 'approve'; it cannot be submitted as 'reject'"
    with pytest.raises(InputError, match=refused) as err:
        engine.revoke(req.id, by="alice", signed=signed(req, "alice", "approve", at=engine.now()))
    assert err.value.code == "invalid_input"
    assert engine.get(req.id).status == "pending"


def test_revocation_with_a_forged_signature_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    forged = signed(req, "alice", "reject", at=engine.now(), key=Ed25519PrivateKey.generate())
    with pytest.raises(ApprovalError, match="does not verify against alice's registered key"):
        engine.revoke(req.id, by="alice", signed=forged)
    assert engine.get(req.id).status == "pending"


def test_security_role_may_revoke_a_request_it_could_not_approve(engine):
    # An auto_allow request names no quorum at all, so only the security
    # role can withdraw it: grace holds it, carol does not.
    req = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    assert req.status == "granted"
    with pytest.raises(ApprovalError, match=f"carol may not revoke request {req.id}"):
        engine.revoke(req.id, by="carol", signed=signed(req, "carol", "reject", at=engine.now()))
    assert engine.revoke(req.id, by="grace", signed=signed(req, "grace", "reject", at=engine.now())).status == "revoked"
