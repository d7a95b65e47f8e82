"""Threat: someone with database write access copies request A's vote rows onto pending request B.

The rows cannot grant B (stored approvals are re-verified whenever they are
counted), but before the fix ``hitlgate show B`` counted them without
checking and printed "2 of 2 approvals; quorum met", which could talk an
operator into trusting B. ``show`` now re-verifies each stored approval of
the one request it shows and marks a vote that does not verify; the
``requests`` listing stays cheap (no signature checks). Real SQLite and
PostgreSQL, real keys; the attacker uses raw SQL.
"""

from __future__ import annotations

import dataclasses

from hitlgate.cli._workflow import format_request
from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from tests.workflow._helpers import proposal, vote, write_vote_row


def test_show_does_not_count_vote_rows_copied_from_another_request(engine: Engine) -> None:
    a = engine.propose(proposal("rotate_api_key", "svc-payments-key", grace_minutes=5))
    a = vote(engine, vote(engine, a, "bob"), "grace")
    assert a.status == "granted"
    b = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    for v in engine.get(a.id).approvals:
        write_vote_row(engine, b.id, SignedStatement.from_dict(v.statement), granted=False)
    progress, unverified = engine.checked_progress(b.id)
    assert not progress.met and progress.count == 0
    assert set(unverified) == {"bob", "grace"}
    assert "is not an approval of this request" in unverified["bob"]
    text = format_request(engine, engine.get(b.id), verify_votes=True)
    assert "quorum met" not in text and "0 of 2 approvals" in text
    assert text.count("NOT COUNTED: signature invalid for this request (forged row?)") == 2



def test_a_copied_row_listed_first_does_not_hide_the_genuine_vote_after_it(engine: Engine, clock) -> None:
    a = engine.propose(proposal("rotate_api_key", "svc-payments-key", grace_minutes=5))
    a = vote(engine, a, "bob")
    clock.advance(60)
    b = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    b = vote(engine, b, "grace")
    # The writer rewrites B's votes: bob's row copied from A first, then grace's genuine one again.
    (bobs,) = engine.get(a.id).approvals
    (graces,) = b.approvals
    with engine.store.engine.begin() as conn:
        conn.execute(t.votes.delete().where(t.votes.c.request_id == b.id))
    write_vote_row(engine, b.id, SignedStatement.from_dict(bobs.statement), granted=False)
    write_vote_row(engine, b.id, SignedStatement.from_dict(graces.statement), granted=False)
    assert [v.approver for v in engine.get(b.id).approvals] == ["bob", "grace"]
    progress, unverified = engine.checked_progress(b.id)
    assert progress.count == 1 and not progress.met
    assert set(unverified) == {"bob"}


def test_a_row_by_an_unregistered_approver_listed_first_does_not_hide_the_genuine_vote(engine: Engine) -> None:
    # The writer puts a vote row by someone the inventory does not know before the genuine one:
    # it is passed over, and the genuine vote after it still counts.
    b = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    b = vote(engine, b, "grace")
    (graces,) = b.approvals
    genuine = SignedStatement.from_dict(graces.statement)
    stranger = dataclasses.replace(genuine, statement=dataclasses.replace(genuine.statement, approver="mallory"))
    with engine.store.engine.begin() as conn:
        conn.execute(t.votes.delete().where(t.votes.c.request_id == b.id))
    write_vote_row(engine, b.id, stranger, granted=False)
    write_vote_row(engine, b.id, genuine, granted=False)
    assert [v.approver for v in engine.get(b.id).approvals] == ["mallory", "grace"]
    progress, _ = engine.checked_progress(b.id)
    assert progress.count == 1 and not progress.met
