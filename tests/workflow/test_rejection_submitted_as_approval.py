"""Threat: a signed rejection is submitted as an approval (or the reverse) to flip its effect.

The verdict is part of what the approver signed, so a statement counts only
as the verdict it carries: a rejection replayed through ``approve`` must
not count toward the quorum, and an approval replayed through ``reject``
must not end the request.
"""

from __future__ import annotations

import pytest

from hitlgate.errors import InputError
from tests.workflow._helpers import proposal, signed


def test_signed_rejection_submitted_as_approval_is_refused(engine):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    rejection = signed(req, "alice", "reject", at=engine.now())
    refused = "this statement's verdict is 'reject'; it cannot be submitted as 'approve'"
    with pytest.raises(InputError, match=refused) as err:
        engine.approve(rejection)
    assert err.value.code == "invalid_input"
    after = engine.get(req.id)
    assert after.status == "pending" and after.votes == ()


def test_signed_approval_submitted_as_rejection_is_refused(engine):
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    approval = signed(req, "alice", "approve", at=engine.now())
    refused = "this statement's verdict is 'approve'; it cannot be submitted as 'reject'"
    with pytest.raises(InputError, match=refused):
        engine.reject(approval)
    after = engine.get(req.id)
    assert after.status == "pending" and after.votes == ()
