"""Threat: a database writer reuses request A's genuine approval to get a warrant for request B.

Both requests are for the very same action, so the approval's action
digest and signature are genuine for B too; only its ``request_id`` says it
was given for A. The warrant for B must not be minted from it.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import StorageError
from tests.workflow._helpers import proposal, signed, vote, write_vote_row


def test_approval_of_one_request_copied_to_another_gets_no_warrant(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner", scope="ci-only")
    a = engine.propose(doc)
    b = engine.propose(doc)
    assert a.action_digest == b.action_digest
    vote(engine, a, "carol")
    write_vote_row(engine, b.id, signed(a, "carol", at=engine.now()))
    with pytest.raises(StorageError, match=f"not an approval of this request.*{b.action_digest}") as err:
        engine.warrant(b.id)
    assert err.value.code == "forged_vote"
    with engine.store.read() as tx:
        assert tx.warrant_for(b.id) is None
    # The genuine request still gets its warrant.
    assert engine.warrant(a.id).request_id == a.id


def test_rejection_stored_as_an_approval_gets_no_warrant(engine):
    # A writer flips the verdict column of a genuine rejection: the signed
    # statement still says "reject", so it cannot count as an approval.
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    rejection = signed(req, "carol", "reject", at=engine.now())
    write_vote_row(engine, req.id, rejection)
    with engine.store.engine.begin() as conn:
        conn.execute(sa.update(t.votes).where(t.votes.c.request_id == req.id).values(verdict="approve"))
    with pytest.raises(StorageError, match="not an approval of this request"):
        engine.warrant(req.id)


def test_approval_stored_under_another_approvers_name_gets_no_warrant(engine):
    # carol's genuine approval, filed under alice's name in the votes table.
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    s = signed(req, "carol", at=engine.now())
    write_vote_row(engine, req.id, s)
    with engine.store.engine.begin() as conn:
        conn.execute(sa.update(t.votes).where(t.votes.c.request_id == req.id).values(approver="alice"))
    with pytest.raises(StorageError, match="stored approval by alice is not an approval of this request"):
        engine.warrant(req.id)
