"""Fault: a vote built or recorded with a time in no zone, or with a verdict that is neither approve nor reject.

A naive time is a guess about the zone: stored, it would put the vote
hours away from when it was signed, and deadlines and the audit trail
would disagree about it. Each is refused before anything is written, with
the field named, so the caller knows which of its two times is wrong.
"""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from hitlgate.engine.ledger.store import Vote
from tests.workflow._helpers import T0, proposal


def test_vote_with_an_unknown_verdict_is_refused() -> None:
    with pytest.raises(ValueError, match="^unknown verdict 'maybe'$"):
        Vote(approver="alice", verdict="maybe", signed_at=T0, recorded_at=T0, statement={})


@pytest.mark.parametrize("field", ["signed_at", "recorded_at"])
def test_vote_with_a_naive_time_is_refused_by_name(field: str) -> None:
    times = {"signed_at": T0, "recorded_at": T0, field: T0.replace(tzinfo=None)}
    with pytest.raises(ValueError, match=f"^{field} must be timezone-aware$"):
        Vote(approver="alice", verdict="approve", statement={}, **times)


@pytest.mark.parametrize("field", ["signed_at", "recorded_at"])
def test_vote_row_with_a_naive_time_is_refused_by_name_and_not_written(make_engine, field: str) -> None:  # noqa: ANN001
    engine = make_engine()
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    times = {"signed_at": T0, "recorded_at": T0, field: T0.replace(tzinfo=None)}
    with pytest.raises(ValueError, match=f"^{field} must be timezone-aware$"), engine.store.write() as tx:
        tx.insert_vote(request_id=req.id, approver="alice", verdict="approve", statement={}, **times)
    assert engine.get(req.id).votes == ()


def test_vote_row_in_another_zone_comes_back_in_utc(make_engine) -> None:  # noqa: ANN001
    engine = make_engine()
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    east = T0.astimezone(timezone(timedelta(hours=2)))
    with engine.store.write() as tx:
        vote = tx.insert_vote(request_id=req.id, approver="alice", verdict="approve", statement={},
                              signed_at=east, recorded_at=east + timedelta(seconds=5))
    (stored,) = engine.get(req.id).votes
    for v in (vote, stored):
        assert (v.signed_at, v.recorded_at) == (T0, T0 + timedelta(seconds=5))
        assert v.signed_at.utcoffset() == v.recorded_at.utcoffset() == timedelta(0)


def test_vote_row_with_an_unknown_verdict_is_refused_before_the_insert(make_engine) -> None:  # noqa: ANN001
    # The refusal is caught inside the transaction, which then commits: had the row been inserted before
    # the verdict was checked, it would be stored, and every later read of the request would fail on it.
    engine = make_engine()
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    with engine.store.write() as tx:
        with pytest.raises(ValueError, match="^unknown verdict 'maybe'$"):
            tx.insert_vote(request_id=req.id, approver="alice", verdict="maybe", statement={}, signed_at=T0,
                           recorded_at=T0)
    assert engine.get(req.id).votes == ()
