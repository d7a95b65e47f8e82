"""Threat: someone with database access edits the stored action after approval.

Approvals and the warrant are bound to the action digest, so an edit of the
stored parameters must make the guard refuse, whether or not the attacker
also rewrites the stored digest.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from hitlgate.engine.decide.proposal import action_digest
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import InvalidWarrant, StorageError
from tests.workflow._helpers import granted_warrant, proposal, vote


def _edit_stored_action(engine, request_id, *, update_digest):
    with engine.store.engine.begin() as conn:
        row = conn.execute(sa.select(t.requests.c.proposal).where(t.requests.c.id == request_id)).one()
        doc = json.loads(row[0])
        doc["action"]["parameters"]["scope"] = "every-environment"
        values = {"proposal": json.dumps(doc)}
        if update_digest:
            values["action_digest"] = action_digest(doc["action"])
        conn.execute(t.requests.update().where(t.requests.c.id == request_id).values(**values))
    return doc["action"]


@pytest.mark.parametrize("update_digest", [False, True], ids=["params-only", "params-and-digest"])
def test_guard_refuses_after_the_stored_action_was_edited(engine, update_digest):
    doc = proposal("suspend_service_account", "svc-ci-runner", scope="ci-only")
    req, token = granted_warrant(engine, doc, ("carol",))
    edited = _edit_stored_action(engine, req.id, update_digest=update_digest)
    ran = []
    # The approved action: the store no longer agrees with what was approved.
    reason = (r"the stored request \S+ is for action sha256:\w+, the warrant for sha256:\w+$" if update_digest else
              r"the stored action of request \S+ was changed after approval \(it no longer hashes to the approved "
              r"digest\)$")
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: " + reason):
        engine.guard().execute(token, doc["action"], ran.append)
    # The edited action: the warrant is bound to another digest.
    with pytest.raises(InvalidWarrant, match="different action"):
        engine.guard().execute(token, edited, ran.append)
    assert not ran


def test_approving_an_edited_pending_request_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner", scope="ci-only"))
    _edit_stored_action(engine, req.id, update_digest=False)
    with pytest.raises(StorageError, match="does not match its digest"):
        vote(engine, req, "carol")
    assert engine.get(req.id).status == "pending"


def test_warrant_is_not_issued_for_an_edited_request(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner", scope="ci-only"))
    vote(engine, req, "carol")
    _edit_stored_action(engine, req.id, update_digest=False)
    with pytest.raises(StorageError, match=rf"^request {req.id}: the stored action does not match its "
                                           r"digest; it was changed after it was proposed, so nothing bound to it is "
                                           r"valid$"):
        engine.warrant(req.id)


@pytest.mark.parametrize("update_digest", [False, True], ids=["params-only", "params-and-digest"])
def test_action_edited_between_grant_and_warrant_gets_no_warrant(engine, update_digest):
    # The grant is recorded but no warrant is minted yet; the attacker now
    # rewrites the stored action and its digest, so the stored request is
    # self-consistent again. The approval in the store was signed over the
    # old digest: the warrant must not be issued for the new action.
    doc = proposal("suspend_service_account", "svc-ci-runner", scope="ci-only")
    req = vote(engine, engine.propose(doc), "carol")
    assert req.status == "granted"
    _edit_stored_action(engine, req.id, update_digest=update_digest)
    reason = "does not match its digest" if not update_digest else "not an approval of this request"
    with pytest.raises(StorageError, match=reason):
        engine.warrant(req.id)
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None


def test_vote_row_inserted_into_the_store_gets_no_warrant(engine):
    # Someone with database access inserts an approval nobody signed with
    # their registered key, and marks the request granted.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.workflow._helpers import signed

    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner", scope="ci-only"))
    forged = signed(req, "carol", at=engine.now(), key=Ed25519PrivateKey.generate())
    with engine.store.engine.begin() as conn:
        conn.execute(t.votes.insert().values(
            request_id=req.id, approver="carol", verdict="approve", statement=json.dumps(forged.to_dict()),
            signed_at=engine.now(), recorded_at=engine.now(),
        ))
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(status="granted"))
    with pytest.raises(StorageError, match="does not verify"):
        engine.warrant(req.id)
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None
