"""Threat: the person who proposed an action approves it themselves."""

from __future__ import annotations

import pytest

from hitlgate.errors import ApprovalError, StorageError
from tests.workflow._helpers import proposal, signed, vote, write_vote_row


def _by(name, action_type="suspend_service_account", target="svc-ci-runner"):
    doc = proposal(action_type, target)
    doc["requester"] = {"id": name, "kind": "human"}
    return doc


def test_requester_cannot_approve(engine):
    req = engine.propose(_by("alice"))
    with pytest.raises(ApprovalError, match="proposed request"):
        vote(engine, req, "alice")
    assert engine.get(req.id).votes == ()
    assert engine.get(req.id).status == "pending"


def test_requester_cannot_fill_a_slot_of_a_dual_approval(engine):
    req = engine.propose(_by("erin", "rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    with pytest.raises(ApprovalError, match="proposed request"):
        vote(engine, req, "erin")
    assert engine.get(req.id).status == "pending"


def test_requester_cannot_reject_either(engine):
    req = engine.propose(_by("carol"))
    with pytest.raises(ApprovalError, match=f"carol proposed request {req.id} and cannot also vote on it") as info:
        vote(engine, req, "carol", "reject")
    assert info.value.code == "self_approval"
    assert engine.get(req.id).status == "pending"


def test_requester_cannot_approve_under_another_spelling(engine):
    # requester.id is free text: "ALICE" proposing must not let alice approve.
    req = engine.propose(_by("ALICE"))
    with pytest.raises(ApprovalError, match="proposed request"):
        vote(engine, req, "alice")
    assert engine.get(req.id).status == "pending"


@pytest.mark.parametrize("spelling", ["alice", "ALICE"])
def test_self_approval_written_into_the_store_gets_no_warrant(engine, spelling):
    # The engine refused alice's vote on her own request; a database writer
    # stores it anyway (her genuine signature) and marks the request granted.
    req = engine.propose(_by(spelling))
    write_vote_row(engine, req.id, signed(req, "alice", at=engine.now()))
    with pytest.raises(StorageError,
                       match=f"^request {req.id}: the store holds an approval by its own requester alice$") as exc:
        engine.warrant(req.id)
    assert exc.value.code == "forged_vote"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None
