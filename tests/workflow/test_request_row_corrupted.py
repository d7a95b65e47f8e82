"""A request row whose stored proposal or decision was corrupted is refused by name, not half read.

A writer with database access (or a bad restore) leaves a request whose
``proposal`` or ``decision`` column is not the JSON the engine wrote:
reading it names the request and what could not be parsed, and nothing is
approved, issued or listed from it as if it were whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import StorageError
from tests.workflow._helpers import proposal, vote


def _corrupt(engine: Engine, request_id: str, **columns: str) -> None:
    with engine.store.engine.begin() as conn:
        conn.execute(sa.update(t.requests).where(t.requests.c.id == request_id).values(**columns))


@pytest.mark.parametrize(
    ("column", "text", "reason", "whole"),
    [
        ("proposal", "{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", True),
        ("decision", "", "Expecting value: line 1 column 1 (char 0)", True),
        ("decision", "[1, 2", "Expecting ',' delimiter: line 1 column 6 (char 5)", True),
        # JSON, but not a decision: the database's fault, not the policy's (it was validated when stored).
        ("decision", '{"tier": "auto_allow"}', "invalid decision document: 7 problem(s)\n  - "
                                              "risk_factors: required field is missing", False),
    ],
    ids=["proposal-not-json", "decision-empty", "decision-cut", "decision-not-a-decision"],
)
def test_a_corrupted_column_is_named_with_the_request(
    make_engine: Callable[..., Engine], column: str, text: str, reason: str, whole: bool
) -> None:
    # ``whole``: the reason is the whole message (else its first lines: a decision's problems go on).
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    _corrupt(engine, req.id, **{column: text})
    message = "^" + re.escape(f"request {req.id} is stored corrupted: {reason}")
    message += "$" if whole else "\n"
    with pytest.raises(StorageError, match=message):
        engine.get(req.id)
    with pytest.raises(StorageError, match=message):
        engine.warrant(req.id)


def test_an_intact_row_reads_back_as_written(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    again = engine.get(req.id)
    assert again.proposal == req.proposal and again.decision == req.decision
    assert json.loads(json.dumps(again.proposal)) == again.proposal
    assert again.status_reason == req.status_reason


def test_a_corrupted_row_refuses_the_listing_page_by_name(make_engine: Callable[..., Engine]) -> None:
    # A listing does not skip the row (people would not see the request) nor print it half read.
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    _corrupt(engine, req.id, proposal="{")
    with pytest.raises(StorageError, match="^" + re.escape(f"request {req.id} is stored corrupted: Expecting ")):
        engine.list("pending", limit=10)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("statement", "{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("statement", "[1, 2]", "the statement is a JSON list, not an object"),
        ("statement", "null", "the statement is a JSON NoneType, not an object"),
        ("statement", '{"a": NaN}', "JSON constant NaN is not allowed"),
        ("verdict", "maybe", "unknown verdict 'maybe'"),
        ("signed_at", "yesterday",
         "time data 'yesterday' does not match format '%Y-%m-%dT%H:%M:%S.%fZ'"),
        ("recorded_at", "2026-01-01T00:00:00Z",
         "time data '2026-01-01T00:00:00Z' does not match format '%Y-%m-%dT%H:%M:%S.%fZ'"),
    ],
    ids=["statement-not-json", "statement-a-list", "statement-null", "statement-nan", "unknown-verdict",
         "signed-at-not-a-time", "recorded-at-other-spelling"],
)
def test_a_corrupted_vote_is_named_with_its_request_in_a_read_and_a_listing(
    make_engine: Callable[..., Engine], column: str, value: str, reason: str
) -> None:
    # Both reads of votes (one request's, and a listing page's: one statement on PostgreSQL, two on SQLite)
    # refuse the row with the same StorageError; before, a statement that was not JSON or a time in another
    # spelling escaped as a bare ValueError, and a statement that was JSON but not an object was read and
    # failed later, when the request was printed (an internal error, not the database's fault named).
    engine = make_engine()
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    vote(engine, req, "alice")
    with engine.store.engine.begin() as conn:
        # Bound as plain text: the times' column type would refuse text that is not a time before the database saw it.
        conn.execute(sa.update(t.votes).where(t.votes.c.request_id == req.id)
                     .values(**{column: sa.literal(value, sa.String)}))
    message = "^" + re.escape(f"a vote on request {req.id} is stored corrupted: {reason}") + "$"
    with pytest.raises(StorageError, match=message):
        engine.get(req.id)
    with pytest.raises(StorageError, match=message):
        engine.list("pending", limit=10)
