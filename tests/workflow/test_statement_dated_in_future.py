"""Threat: an approval signed in advance (or on a wrong clock) is used before its date.

A statement dated more than ``MAX_CLOCK_SKEW`` after the engine's clock is
refused, for approvals, rejections and revocations alike; one dated exactly
at the limit is still accepted (a clock a few minutes off is normal).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.engine.approve.workflow import MAX_CLOCK_SKEW
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal, signed

TOO_LATE = MAX_CLOCK_SKEW + timedelta(seconds=1)


def test_approval_dated_in_the_future_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    ahead = signed(req, "carol", at=engine.now() + TOO_LATE)
    with pytest.raises(ApprovalError, match="carol's statement is dated in the future") as err:
        engine.approve(ahead)
    assert err.value.code == "approval_refused"
    after = engine.get(req.id)
    assert after.status == "pending" and after.votes == ()


def test_approval_dated_at_the_skew_limit_is_accepted(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert engine.approve(signed(req, "carol", at=engine.now() + MAX_CLOCK_SKEW)).status == "granted"


def test_approval_signed_in_advance_counts_once_its_time_has_come(engine, clock):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    ahead = signed(req, "carol", at=engine.now() + TOO_LATE)
    with pytest.raises(ApprovalError, match="dated in the future"):
        engine.approve(ahead)
    clock.advance(TOO_LATE.total_seconds())
    assert engine.approve(ahead).status == "granted"


def test_rejection_dated_in_the_future_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="dated in the future"):
        engine.reject(signed(req, "carol", "reject", at=engine.now() + TOO_LATE))
    assert engine.get(req.id).status == "pending"


def test_revocation_dated_in_the_future_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="dated in the future"):
        engine.revoke(req.id, by="alice", signed=signed(req, "alice", "reject", at=engine.now() + TOO_LATE))
    assert engine.get(req.id).status == "pending"
