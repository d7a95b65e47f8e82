"""Threat: the person who proposed an action approves it themselves."""

from __future__ import annotations

import pytest

from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal, vote


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
    with pytest.raises(ApprovalError):
        vote(engine, req, "carol", "reject")
    assert engine.get(req.id).status == "pending"


def test_requester_cannot_approve_under_another_spelling(engine):
    # requester.id is free text: "ALICE" proposing must not let alice approve.
    req = engine.propose(_by("ALICE"))
    with pytest.raises(ApprovalError, match="proposed request"):
        vote(engine, req, "alice")
    assert engine.get(req.id).status == "pending"
