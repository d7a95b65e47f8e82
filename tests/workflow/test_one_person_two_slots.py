"""Threat: one person who belongs to two groups fills both slots of a dual approval.

erin has the role security and is on team-payments; svc-payments-key's
rotation needs one person with the role security and one member of
team-payments. erin alone must never be enough.
"""

from __future__ import annotations

import pytest

from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal, vote


def test_erin_alone_cannot_grant_a_dual_approval(engine):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    assert req.tier == "dual_approval"
    req = vote(engine, req, "erin")
    assert req.status == "pending"
    report = engine.progress(req.id)
    assert report.count == 1 and not report.met
    assert report.describe().startswith("1 of 2 approvals; missing:")
    with pytest.raises(ApprovalError, match="pending"):
        engine.warrant(req.id)


def test_matching_moves_erin_to_the_slot_only_she_can_fill(engine):
    # A greedy pass would seat erin on security and leave team-payments empty.
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "erin")
    req = vote(engine, req, "grace")
    assert req.status == "granted"
    report = engine.progress(req.id)
    assert dict(report.assignment) == {0: "grace", 1: "erin"}
    claims = engine.guard().check(engine.warrant(req.id).token, req.action)
    assert sorted(a["approver"] for a in claims.approvals) == ["erin", "grace"]


def test_two_security_people_do_not_make_up_for_team_payments(engine):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    req = vote(engine, req, "grace")
    assert req.status == "pending"
    assert "a member of team-payments" in engine.progress(req.id).describe()
