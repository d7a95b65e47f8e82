"""Threat: an approver is removed from the inventory between the grant and the warrant.

Authority comes from today's inventory, not from the stored vote: an
approver removed (key compromised, left the company) after their approval
granted the request no longer counts, and no warrant is minted while the
quorum is short.
"""

from __future__ import annotations

import re

import pytest

from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal, vote


def _remove_approver(pack, name: str) -> None:
    path = pack / "data" / "inventory.yaml"
    text = path.read_text(encoding="utf-8")
    # Drop the approver's block: their name line and its indented lines.
    pruned = re.sub(rf"\n  {name}:\n(?:    .*\n|\s*#.*\n)*", "\n", text)
    assert pruned != text, f"{name} not found in {path}"
    path.write_text(pruned, encoding="utf-8")


def test_approver_removed_after_the_grant_gets_no_warrant(make_engine, pack_copy):
    engine = make_engine(pack=pack_copy)
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    assert req.status == "granted"
    _remove_approver(pack_copy, "carol")
    with pytest.raises(ApprovalError, match=f"request {req.id}: quorum no longer met: 0 of 1 approval; missing: "
                                            "someone with the role security or a member of team-platform"):
        engine.warrant(req.id)
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None
    assert "warrant_issued" not in [e.kind for e in engine.audit_events(req.id)]


def test_one_of_two_approvers_removed_leaves_a_dual_approval_short(make_engine, pack_copy):
    engine = make_engine(pack=pack_copy)
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    assert vote(engine, req, "bob").status == "granted"
    _remove_approver(pack_copy, "bob")
    with pytest.raises(ApprovalError, match="quorum no longer met: 1 of 2 approvals; missing: a member of "
                                            "team-payments"):
        engine.warrant(req.id)


def test_first_of_two_approvers_removed_still_counts_the_second(make_engine, pack_copy):
    # The count skips a removed approver's vote and goes on: stopping there would also drop every approval
    # recorded after it, and report a quorum shorter than it is.
    engine = make_engine(pack=pack_copy)
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    assert vote(engine, req, "bob").status == "granted"
    _remove_approver(pack_copy, "alice")
    with pytest.raises(ApprovalError, match=f"request {req.id}: quorum no longer met: 1 of 2 approvals; missing: "
                                            "someone with the role security$"):
        engine.warrant(req.id)
