"""Race: the stored proposal changes between the warrant path's early look and its write lock.

``Engine.warrant`` asks the policy about the stored proposal before it takes
the write lock, so policy evaluation does not hold the lock. Under the lock
it reads the request again, and the early answer counts only if it was about
the same stored proposal. A database writer who swaps the action of a
granted single-approval request for one that needs two approvals, and
rewrites its digest to match, in between the two reads, gets no warrant,
refused as what it is: the policy is asked again about what is stored now
and gives a tier that is not the stored one (the votes, signed over the old
digest, would be refused only after that).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Connection

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.decide.proposal import action_digest
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import at_write_begin, proposal, vote

SINGLE = proposal("suspend_service_account", "svc-ci-runner")
DUAL = proposal("rotate_api_key", "svc-payments-key")


def test_action_swapped_after_the_early_look_gets_no_warrant(engine: Engine) -> None:
    req = vote(engine, engine.propose(SINGLE), "carol")
    assert (req.status, req.tier) == ("granted", "single_approval")

    def swap_action(conn: Connection) -> None:
        # The digest is rewritten with the action, so the stored action still hashes to it.
        stored = dict(req.proposal, action=DUAL["action"])
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(
            proposal=json.dumps(stored, sort_keys=True), target=DUAL["action"]["target"],
            action_digest=action_digest(DUAL["action"])))

    fired = at_write_begin(engine, swap_action)
    refused = r"stored as single_approval, but the policy now gives dual_approval"
    with pytest.raises(ApprovalError, match=refused) as err:
        engine.warrant(req.id)
    assert fired and err.value.code == "tier_mismatch"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None
    assert "warrant_issued" not in [e.kind for e in engine.audit_events(req.id)]


def test_early_answer_is_used_when_the_stored_proposal_is_unchanged(engine: Engine) -> None:
    # The same race with a change that leaves the proposal as it was: the warrant is issued, bound to
    # the stored action (the early answer stands; only a changed proposal sends the path back to the policy).
    req = vote(engine, engine.propose(SINGLE), "carol")

    def touch(conn: Connection) -> None:
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(status_reason="touched"))

    fired = at_write_begin(engine, touch)
    record = engine.warrant(req.id)
    assert fired and record.request_id == req.id
    assert engine.get(req.id).status_reason == "touched"
    assert engine.guard().execute(record.token, SINGLE["action"], lambda _a: "ran") == "ran"
