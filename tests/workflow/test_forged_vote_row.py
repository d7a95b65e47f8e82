"""Threat: someone with database write access inserts a vote row in another approver's name.

They cannot sign as bob, but before the fix votes were only re-verified when
the warrant was minted: an honest second vote then moved the request to
``granted`` with an audit event naming the forged approver. Stored approvals
are now re-verified (signature against the registered key, request id,
action digest, verdict) whenever they are counted.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError, StorageError
from tests.workflow._helpers import T0, proposal, signed, vote


def _insert_vote_row(engine: Engine, request_id: str, approver: str, statement: dict[str, object]) -> None:
    with engine.store.engine.begin() as conn:
        conn.execute(t.votes.insert().values(request_id=request_id, approver=approver, verdict="approve",
                                             statement=json.dumps(statement, sort_keys=True),
                                             signed_at=T0, recorded_at=T0))


def test_forged_vote_row_does_not_help_an_honest_vote_grant(engine: Engine) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    assert req.tier == "dual_approval"
    # bob (team-payments) never voted; the attacker signs "his" approval with a key of their own.
    forged = signed(req, "bob", at=engine.now(), key=Ed25519PrivateKey.generate())
    _insert_vote_row(engine, req.id, "bob", forged.to_dict())
    with pytest.raises(StorageError, match=r"the stored approval by bob does not verify.*written into the "
                                           r"database, not cast$") as exc:
        vote(engine, req, "grace")
    assert exc.value.code == "forged_vote"
    after = engine.get(req.id)
    assert after.status == "pending"
    kinds = [e.kind for e in engine.audit_events(req.id)]
    assert "granted" not in kinds and "approved" not in kinds


def test_vote_row_copied_from_another_request_is_not_counted(engine: Engine) -> None:
    other = engine.propose(proposal("rotate_api_key", "svc-payments-key", grace_minutes=5))
    genuine = vote(engine, other, "bob")
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    statement = next(v.statement for v in genuine.votes if v.approver == "bob")
    _insert_vote_row(engine, req.id, "bob", dict(statement))
    with pytest.raises(StorageError, match="is not an approval of this request and action"):
        vote(engine, req, "grace")
    assert engine.get(req.id).status == "pending"


def test_forged_row_is_reported_by_audit_verify(engine: Engine) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    _insert_vote_row(engine, req.id, "bob", signed(req, "bob", key=Ed25519PrivateKey.generate()).to_dict())
    with pytest.raises(AuditChainError, match=r"the audit chain verifies, but the database contradicts it in 1 "
                                              r"place\(s\): request \S+: the vote row by bob has no vote event in "
                                              r"the chain \(forged vote\)$") as exc:
        engine.verify_audit()
    assert exc.value.code == "state_contradicts_chain"
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.votes))
    engine.verify_audit()


def test_unparseable_vote_row_is_refused_as_corrupt_not_counted(engine: Engine) -> None:
    # A row that is not a signed statement at all (a hand-written "approval")
    # must stop the grant with the forged-vote code, never be skipped or counted.
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    _insert_vote_row(engine, req.id, "bob", {"statement": {"approver": "bob"}, "signature": "not-a-signature"})
    with pytest.raises(StorageError, match=rf"^request {req.id}: the stored approval by bob is corrupt: \S") as exc:
        vote(engine, req, "grace")
    assert exc.value.code == "forged_vote"
    assert engine.get(req.id).status == "pending"
