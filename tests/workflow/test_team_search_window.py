"""The console's team search in the store: matched in SQL, never by LIKE wildcards, inside a bounded window.

Teams live in each request's stored decision (its quorum slots), not in a
column, so the database matches the team's JSON-quoted name in the decision
text. A team name holding ``%`` or ``_`` must match only itself (an
unescaped ``%`` would list every request to a filter meant for one team),
and a search for a team no request names must read a bounded window of the
index (``within``), not every request; ``listing_mark`` says where that
window ended so the next page continues after it. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.store import MAX_LIST_LIMIT, ListCursor, ListFilters
from hitlgate.errors import InputError
from tests.workflow._helpers import FakeClock, proposal, vote


def _ids(requests: list) -> list[str]:  # type: ignore[type-arg]
    return [r.id for r in requests]


def test_team_is_matched_in_the_stored_quorum_text_and_wildcards_match_only_themselves(engine: Engine) -> None:
    payments = [engine.propose(proposal("revoke_secret", "svc-payments-key")).id for _ in range(2)]
    platform = [engine.propose(proposal("suspend_service_account", "svc-ci-runner")).id for _ in range(2)]
    listed = _ids(engine.list(lifecycle.PENDING))
    assert sorted(listed) == sorted(payments + platform)
    assert _ids(engine.list(lifecycle.PENDING, filters=ListFilters(team="team-payments"))) == \
        [i for i in listed if i in payments]
    assert _ids(engine.list(lifecycle.PENDING, filters=ListFilters(team="team-platform"))) == \
        [i for i in listed if i in platform]
    for wildcard in ("%", "team%", "team_payments", "team-pay%", "_", "\\", '"'):
        assert engine.list(lifecycle.PENDING, filters=ListFilters(team=wildcard)) == [], wildcard


def test_a_bounded_window_is_searched_and_its_end_is_where_the_next_page_starts(engine: Engine) -> None:
    for _ in range(3):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    newest = engine.list(lifecycle.PENDING)
    assert len(newest) == 3
    nobody = ListFilters(team="team-nobody")
    assert engine.list(lifecycle.PENDING, filters=ListFilters(team="team-platform"), within=2) == newest[:2]
    assert engine.list(lifecycle.PENDING, filters=nobody, within=2) == []
    mark = engine.listing_mark(lifecycle.PENDING, 2)
    assert mark == ListCursor.after(newest[1])
    assert engine.list(lifecycle.PENDING, before=mark, filters=ListFilters(team="team-platform"), within=2) \
        == newest[2:]
    assert engine.listing_mark(lifecycle.PENDING, 1, before=mark) == ListCursor.after(newest[2])
    assert engine.listing_mark(lifecycle.PENDING, 2, before=mark) is None
    assert engine.listing_mark(lifecycle.PENDING, 4) is None


@pytest.mark.parametrize("bad", [0, -1, MAX_LIST_LIMIT + 1])
def test_window_bounds(engine: Engine, bad: int) -> None:
    with pytest.raises(InputError, match=f"^within must be between 1 and {MAX_LIST_LIMIT}, not {bad}$"):
        engine.list(lifecycle.PENDING, within=bad)
    with pytest.raises(InputError, match=f"^nth must be between 1 and {MAX_LIST_LIMIT}, not {bad}$"):
        engine.listing_mark(lifecycle.PENDING, bad)


def test_listing_mark_counts_only_the_listed_status(engine: Engine, clock: FakeClock) -> None:
    first = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    clock.advance(1)
    rejected = vote(engine, engine.propose(proposal("suspend_service_account", "svc-reporting")), "frank", "reject")
    clock.advance(1)
    last = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert rejected.status == lifecycle.REJECTED
    # Newest first: last, rejected, first. The pending listing skips the rejected request; the whole one does not.
    assert engine.listing_mark(lifecycle.PENDING, 2) == ListCursor.after(first)
    assert engine.listing_mark(None, 2) == ListCursor.after(rejected)
    assert engine.listing_mark(lifecycle.PENDING, 1, before=ListCursor.after(last)) == ListCursor.after(first)
    assert engine.listing_mark(None, 1, before=ListCursor.after(last)) == ListCursor.after(rejected)
    assert engine.listing_mark(lifecycle.PENDING, MAX_LIST_LIMIT) is None  # The largest window is allowed.


def test_window_lists_only_the_status_asked_newest_first_and_at_most_the_limit(
    engine: Engine, clock: FakeClock
) -> None:
    """A bounded search keeps the listing's status, order and page size; its window may be 1 or the largest."""
    pending: list[str] = []
    # Request ids are random: propose until their own order is not the creation order, so that a listing
    # ordered by id alone shows.
    while len(pending) < 3 or sorted(pending, reverse=True) == pending[::-1]:
        pending.append(engine.propose(proposal("suspend_service_account", "svc-ci-runner")).id)
        clock.advance(1)
        vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol", "reject")
        clock.advance(1)
    newest_first = pending[::-1]
    team = ListFilters(team="team-platform")
    assert _ids(engine.list(lifecycle.PENDING, filters=team, within=MAX_LIST_LIMIT)) == newest_first
    assert _ids(engine.list(lifecycle.PENDING, limit=2, filters=team, within=MAX_LIST_LIMIT)) == newest_first[:2]
    assert _ids(engine.list(lifecycle.PENDING, filters=team, within=1)) == newest_first[:1]
    rejected = _ids(engine.list(lifecycle.REJECTED))
    assert len(rejected) == len(pending)
    assert _ids(engine.list(lifecycle.REJECTED, filters=team, within=1)) == rejected[:1]
    assert _ids(engine.list(None, filters=team, within=2)) == [rejected[0], newest_first[0]]
