"""Threat: one person approves twice to reach a two-person quorum alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal, signed, vote


def test_second_approval_by_the_same_person_is_refused(engine, clock):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    clock.advance(30)
    # A fresh statement (new time, new signature) is still the same person.
    with pytest.raises(ApprovalError, match="already voted"):
        engine.approve(signed(req, "alice", at=clock.now))
    after = engine.get(req.id)
    assert after.status == "pending"
    assert [v.approver for v in after.votes] == ["alice"]
    assert engine.progress(req.id).count == 1


def test_the_same_signed_statement_twice_is_refused(engine):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    s = signed(req, "alice", at=engine.now())
    engine.approve(s)
    with pytest.raises(ApprovalError, match="already voted"):
        engine.approve(s)
    assert engine.get(req.id).status == "pending"


def test_store_constraint_refuses_a_duplicate_vote_row(engine):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    with pytest.raises(ApprovalError, match=f"alice has already voted on request {req.id}; a vote cannot be changed"), \
            engine.store.write() as tx:
        tx.insert_vote(
            request_id=req.id,
            approver="alice",
            verdict="approve",
            statement={},
            signed_at=engine.now(),
            recorded_at=engine.now() + timedelta(seconds=1),
        )
    assert len(engine.get(req.id).votes) == 1
