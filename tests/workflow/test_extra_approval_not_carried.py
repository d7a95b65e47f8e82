"""An approval the quorum did not count is left out of the warrant, and the ones counted after it are kept.

A dual-approval request needs a security approver and a member of
team-payments. alice and grace (both security) approve before bob
(team-payments): the quorum counts one of them and bob. The warrant carries
exactly the two counted approvals, each with the place it filled, whichever
order they were cast in; the uncounted one must not end the list early.
"""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.workflow._helpers import proposal, vote


def test_uncounted_approval_is_skipped_not_the_end_of_the_list(engine: Engine) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    assert req.tier == "dual_approval"
    for name in ("alice", "grace", "bob"):
        req = vote(engine, req, name)
    assert req.status == "granted"
    counted = set(engine.progress(req.id).counted)
    assert len(counted) == 2 and "bob" in counted
    token = engine.warrant(req.id).token
    claims = engine.guard().check(token, proposal("rotate_api_key", "svc-payments-key")["action"])
    carried = {a["approver"]: a["role"] for a in claims.approvals}
    assert set(carried) == counted
    assert carried["bob"] == "a member of team-payments"
