"""Threat: an approver's later vote replaces their earlier one (approve then reject, or the reverse)."""

from __future__ import annotations

import pytest

from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal, vote


def test_approve_then_reject_keeps_the_approval(engine, clock):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "erin")
    clock.advance(5)
    with pytest.raises(ApprovalError, match="cannot be changed"):
        vote(engine, req, "erin", "reject")
    after = engine.get(req.id)
    assert after.status == "pending"
    assert [(v.approver, v.verdict) for v in after.votes] == [("erin", "approve")]
    assert vote(engine, req, "alice").status == "granted"


def test_stored_vote_keeps_its_original_statement(engine, clock):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    first = vote(engine, req, "alice").votes[0]
    clock.advance(60)
    with pytest.raises(ApprovalError, match=f"alice has already voted on request {req.id}; a vote cannot be changed"):
        vote(engine, req, "alice")
    again = engine.get(req.id).votes[0]
    assert again.statement == first.statement and again.recorded_at == first.recorded_at
