"""Listing requests: the page bounds, the order of requests created in the same instant, and the votes shown.

Keyset pagination breaks ties on the request id; without the tie-break two
requests created in the same second could swap between pages, so one is
listed twice and another never (an approver's queue that silently drops a
request).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.store import MAX_LIST_LIMIT, ListCursor, ListFilters
from hitlgate.errors import InputError
from tests.workflow._helpers import proposal, signed


def test_requests_of_one_instant_are_ordered_by_id_and_paged_without_loss(engine: Engine) -> None:
    ids = [engine.propose(proposal("suspend_service_account", "svc-ci-runner")).id for _ in range(5)]
    newest_first = sorted(ids, reverse=True)
    assert [r.id for r in engine.list()] == newest_first
    seen: list[str] = []
    cursor = None
    while True:
        page = engine.list(limit=2, before=cursor)
        if not page:
            break
        seen += [r.id for r in page]
        cursor = ListCursor(page[-1].created_at, page[-1].id)
    assert seen == newest_first


def test_page_size_bounds(engine: Engine) -> None:
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert len(engine.list(limit=1)) == 1
    assert len(engine.list(limit=MAX_LIST_LIMIT)) == 1
    for bad in (0, -1, MAX_LIST_LIMIT + 1):
        with pytest.raises(InputError, match=f"^limit must be between 1 and {MAX_LIST_LIMIT}, not {bad}$"):
            engine.list(limit=bad)


def test_listed_votes_show_who_signed_what_and_when(engine: Engine, clock) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    statement = signed(req, "carol", at=clock.now)
    clock.advance(5)
    engine.approve(statement)
    (listed,) = engine.list()
    (v,) = listed.votes
    assert v.to_dict() == {
        "approver": "carol",
        "verdict": "approve",
        "signed_at": "2025-06-02T09:00:00.000000Z",
        "recorded_at": "2025-06-02T09:00:05.000000Z",
        "statement": statement.to_dict(),
    }


def test_naive_times_in_a_cursor_or_filter_are_refused_by_name() -> None:
    # A naive time is a guess about the zone: a page boundary or a "since" an hour off would skip requests.
    from datetime import datetime

    with pytest.raises(ValueError, match="^created_at must be timezone-aware$"):
        ListCursor(datetime(2026, 1, 1), "req-1")  # The naive time under test.
    with pytest.raises(ValueError, match="^since must be timezone-aware$"):
        ListFilters(since=datetime(2026, 1, 1))  # The naive time under test.


def test_since_keeps_requests_created_at_or_after_it_and_no_earlier(engine, clock) -> None:
    # The bound is compared as the store's own time text: bound in another form (a space for the "T",
    # another precision) it would compare wrongly as text and keep or drop the wrong requests.
    early = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    clock.advance(3600)
    late = engine.propose(proposal("suspend_service_account", "svc-reporting"))
    since = early.created_at + timedelta(minutes=30)
    assert [r.id for r in engine.list(lifecycle.PENDING, filters=ListFilters(since=since))] == [late.id]
    assert {r.id for r in engine.list(lifecycle.PENDING, filters=ListFilters(since=early.created_at))} == \
        {early.id, late.id}
    assert [r.id for r in engine.list(lifecycle.PENDING, filters=ListFilters(since=late.created_at))] == [late.id]
    assert engine.list(lifecycle.PENDING, filters=ListFilters(since=late.created_at + timedelta(microseconds=1))) \
        == []
