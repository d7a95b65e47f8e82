"""Threat: a second, validly signed warrant for a granted request runs the action again.

The engine mints one warrant per request and records its ``jti``. A second
token signed with the engine key for the same request and action (minted
twice by a bug, by a restored backup, or by a second engine sharing the
key) must be refused by the guard: only the recorded ``jti`` may run, so the
action runs at most once whatever the key signed. The same holds for a
token whose ``tier`` claim differs from the stored request's.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import InvalidWarrant, StorageError
from tests.workflow._helpers import granted_warrant, proposal, vote


def _mint(engine, req, *, tier=None, approvals=()):
    """Sign another warrant for ``req`` with the engine's own key, as a second minting would."""
    return engine.issuer.issue(
        request_id=req.id,
        action_digest=req.action_digest,
        tier=tier or req.tier,
        approvals=list(approvals),
        policy_revision=req.policy_revision,
        now=engine.now(),
    )


def test_second_warrant_for_the_same_request_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    claims = engine.verifier.verify(token, action_digest=req.action_digest, now=engine.now())
    rogue = _mint(engine, req, approvals=claims.approvals)
    assert rogue.jti != claims.jti
    ran = []
    with pytest.raises(InvalidWarrant, match=f"warrant {rogue.jti} is not the one issued for request {req.id}"):
        engine.guard().check(rogue.token, doc["action"])
    with pytest.raises(InvalidWarrant, match=f"warrant {rogue.jti} is not the one issued for request {req.id}"):
        engine.guard().execute(rogue.token, doc["action"], ran.append)
    assert ran == []
    with engine.store.read() as tx:
        assert not tx.is_consumed(rogue.jti)
    refusal = engine.audit_events(req.id)[-1]
    assert refusal.kind == "warrant_refused" and "not the one issued" in refusal.payload["reason"]
    # The recorded warrant still runs, once.
    engine.guard().execute(token, doc["action"], ran.append)
    assert ran == [doc["action"]]


def test_warrant_whose_row_was_deleted_is_refused(engine):
    # A restored backup, or a writer, drops the warrants row: the token the
    # executor holds no longer matches what the store says was issued.
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, old = granted_warrant(engine, doc, ("carol",))
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.warrants).where(t.warrants.c.request_id == req.id))
    ran = []
    with pytest.raises(InvalidWarrant, match="is not the one issued for request"):
        engine.guard().execute(old, doc["action"], ran.append)
    assert ran == []
    # Nor does the engine mint a replacement: the chain shows one was issued.
    with pytest.raises(StorageError, match="the audit chain shows one") as err:
        engine.warrant(req.id)
    assert err.value.code == "state_contradicts_chain"


def test_warrant_claiming_a_lower_tier_than_the_request_is_refused(engine):
    # The request needs one approval; a token claiming auto_allow (no
    # approvals at all) for it is refused on the tier before anything else.
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req = vote(engine, engine.propose(doc), "carol")
    assert req.status == "granted" and req.tier == "single_approval"
    rogue = _mint(engine, req, tier="auto_allow")
    ran = []
    with pytest.raises(InvalidWarrant, match="the warrant says tier auto_allow, the stored request single_approval"):
        engine.guard().execute(rogue.token, doc["action"], ran.append)
    assert ran == []
    assert engine.get(req.id).status == "granted"


def test_warrant_claiming_a_higher_tier_than_the_request_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req = vote(engine, engine.propose(doc), "carol")
    rogue = _mint(engine, req, tier="dual_approval",
                  approvals=[{"approver": "carol"}, {"approver": "alice"}])
    with pytest.raises(InvalidWarrant, match="the warrant says tier dual_approval, the stored request single_approval"):
        engine.guard().check(rogue.token, doc["action"])
