"""Threat: a backlog of requests past their window (a long outage, a flood of proposals) makes one tick
expire them all in one write transaction, holding the write lock (and every vote) for the whole sweep.

:func:`hitlgate.engine.tick.run_tick` sweeps in batches of their own
transactions, a bounded number per tick; what is left waits for the next
tick, and a vote on a request whose window closed is refused meanwhile, so
no request is approved late because the sweep has not reached it yet.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.engine import tick
from hitlgate.engine.tick import run_tick
from hitlgate.errors import HitlgateError
from tests.workflow._helpers import proposal, vote

SINGLE = ("suspend_service_account", "svc-ci-runner")  # single approval, 60 min window


def test_expiry_backlog_is_swept_in_bounded_batches(make_engine, clock, monkeypatch: pytest.MonkeyPatch):
    # Small batches stand for the real ones (500 requests, 10 transactions) against a backlog of millions.
    monkeypatch.setattr(tick, "BATCH", 3)
    monkeypatch.setattr(tick, "EXPIRE_BATCHES", 2)
    engine = make_engine()
    requests = [engine.propose(proposal(*SINGLE)) for _ in range(10)]
    clock.advance(2 * 3600)
    first = run_tick(engine)
    assert len(first.expired) == 6 and len(set(first.expired)) == 6
    left = [r for r in requests if r.id not in first.expired]
    assert {engine.get(r.id).status for r in left} == {"pending"}
    # Not swept yet, but over all the same: a late vote is refused and the request becomes expired.
    with pytest.raises(HitlgateError, match=f"request {left[0].id} is expired; it takes no more votes"):
        vote(engine, left[0], "carol")
    assert engine.get(left[0].id).status == "expired"
    second = run_tick(engine, clock.now + timedelta(seconds=5))
    assert sorted(second.expired) == sorted(r.id for r in left[1:])
    assert {engine.get(r.id).status for r in requests} == {"expired"}
