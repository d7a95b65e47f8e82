"""Threat: approvals keep arriving after a rejection, trying to overturn it."""

from __future__ import annotations

import pytest

from hitlgate.errors import ApprovalError, IllegalTransition
from tests.workflow._helpers import proposal, vote


def test_one_rejection_ends_the_request(engine):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    req = vote(engine, req, "bob", "reject")
    assert req.status == "rejected"
    with pytest.raises(ApprovalError, match="rejected"):
        vote(engine, req, "erin")
    with pytest.raises(IllegalTransition, match=f"request {req.id} is rejected; no warrant can be issued") as err:
        engine.warrant(req.id)
    assert err.value.code == "illegal_transition"
    assert [v.approver for v in engine.get(req.id).votes] == ["alice", "bob"]


def test_rejection_by_an_ineligible_person_does_not_end_the_request(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="not eligible"):
        vote(engine, req, "frank", "reject")
    assert vote(engine, req, "carol").status == "granted"


def test_a_granted_request_takes_no_late_rejection(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    vote(engine, req, "carol")
    with pytest.raises(ApprovalError, match="granted"):
        vote(engine, req, "alice", "reject")
