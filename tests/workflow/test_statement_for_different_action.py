"""Threat: an approval signed over one action is counted for a request about another.

The statement names the request id *and* the action digest. A statement
with the right request id but another digest (the approver was shown a
different action, or the statement was edited before signing) is refused,
and nothing is recorded.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import demo_key, proposal


def test_approval_over_another_actions_digest_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    other = engine.propose(proposal("suspend_service_account", "svc-ci-runner", scope="everything"))
    assert other.action_digest != req.action_digest
    statement = Statement(req.id, other.action_digest, "approve", "carol", engine.now())
    with pytest.raises(ApprovalError, match=f"carol's statement is for action {other.action_digest}, but request "
                                            f"{req.id} is for {req.action_digest}"):
        engine.approve(sign(statement, demo_key("carol")))
    after = engine.get(req.id)
    assert after.status == "pending" and after.votes == ()
    assert "approved" not in [e.kind for e in engine.audit_events(req.id)]


def test_rejection_over_another_actions_digest_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    other = engine.propose(proposal("suspend_service_account", "svc-reporting"))
    statement = Statement(req.id, other.action_digest, "reject", "carol", engine.now())
    with pytest.raises(ApprovalError, match="statement is for action"):
        engine.reject(sign(statement, demo_key("carol")))
    assert engine.get(req.id).status == "pending"
