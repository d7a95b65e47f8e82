"""Threat: someone with write access to the database edits the dispatcher's cursor or outbox rows, or a
dispatcher stalls past its lease, or two operators retry one dead letter at once.

On a real SQLite file and a real PostgreSQL: a cursor moved back re-reads
events but enqueues nothing twice (before, the unique key turned that into
a failure of every later tick); a cursor moved past the chain's head is put
back, so new events are still sent; an unreadable message row lists and
ends dead instead of breaking ``notifications list``; a long backlog of old
events is passed over in one tick, not 200 events a tick; a dispatcher whose
lease lapsed while it waited cannot move a row another one has delivered
back to pending; a retry of a row being attempted is refused; and two
concurrent retries of a dead letter send it once.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.notify import dispatcher, outbox
from hitlgate.engine.notify.dispatcher import dispatch, enqueue_new
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.errors import HitlgateError, InputError
from tests.notify.conftest import Receiver, webhook_settings
from tests.workflow._helpers import FakeClock, proposal, vote
from tests.workflow.conftest import EngineFactory


def _engine(make_engine: EngineFactory, url: str, **extra: Any) -> Any:
    return make_engine(config={"notifications": NotificationSettings.from_dict(webhook_settings(url, **extra))})


def _sql(engine: Any, statement: str, **params: Any) -> None:
    """What a database user does behind hitlgate's back."""
    with engine.store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def _head(engine: Any) -> int:
    with engine.store.read() as tx:
        head = tx.head()
    return 0 if head is None else head.seq


def test_cursor_moved_back_sends_nothing_twice(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, receiver.url)
    req = engine.propose(proposal())
    assert dispatch(engine, clock.now).delivered == 1
    _sql(engine, "UPDATE notification_cursor SET seq = 0")
    again = dispatch(engine, clock.now)
    assert (again.enqueued, again.delivered, again.errors) == (0, 0, [])
    assert again.cursor == _head(engine)
    vote(engine, req, "alice")
    assert dispatch(engine, clock.now).delivered == 1
    assert [r.json()["type"] for r in receiver.received] == ["request.pending", "request.vote"]


def test_cursor_moved_past_the_head_is_put_back(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, receiver.url)
    engine.propose(proposal())
    dispatch(engine, clock.now)
    bogus = _head(engine) + 1000
    _sql(engine, "UPDATE notification_cursor SET seq = :seq", seq=bogus)
    later = engine.propose(proposal())
    report = dispatch(engine, clock.now)
    assert any(f"the notification cursor (#{bogus}) was past the audit chain's head" in e for e in report.errors)
    assert report.delivered == 1 and receiver.received[-1].json()["data"]["request_id"] == later.id
    assert report.cursor == _head(engine)


def test_unreadable_message_row_lists_and_ends_dead(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, receiver.url, max_attempts=1)
    engine.propose(proposal())
    enqueue_new(engine, clock.now)
    _sql(engine, "UPDATE notification_outbox SET message = 'not json at all'")
    [row] = outbox.list_rows(engine.store)
    assert row.to_dict()["summary"] == "(unreadable message)"
    assert dispatch(engine, clock.now).dead == 1
    [row] = outbox.list_rows(engine.store, status="dead")
    assert row.last_error.startswith("Expecting value") and receiver.calls == 0


def test_long_backlog_of_old_events_is_passed_over_in_one_tick(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small batch stands for the real one (200) against a history of millions of events.
    monkeypatch.setattr(dispatcher, "BATCH_EVENTS", 4)
    engine = _engine(make_engine, receiver.url, max_event_age_seconds=60)
    for _ in range(12):
        engine.propose(proposal())
    _sql(engine, "UPDATE notification_cursor SET seq = 0")  # Notifications switched on after all that.
    fresh = engine.propose(proposal(), now=clock.advance(3600))
    report = dispatch(engine, clock.now)
    assert report.skipped_stale == 12  # Each old request's "decided" event; "proposed" notifies nobody.
    assert report.delivered == 1 and receiver.received[0].json()["data"]["request_id"] == fresh.id
    assert report.cursor == _head(engine)


def test_stalled_dispatcher_cannot_undo_a_delivery(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, receiver.url)
    engine.propose(proposal())
    enqueue_new(engine, clock.now)
    # Dispatcher A claims the row, then stalls (a frozen VM, a receiver that hung) past its lease.
    [stalled] = outbox.claim_due(engine.store, clock.now, limit=1, lease=timedelta(seconds=60))
    # Dispatcher B finds the lease lapsed and delivers the row.
    assert dispatch(engine, clock.advance(61)).delivered == 1
    # A comes back with a failure: logged, but the row stays delivered, not due again (no second send).
    status = outbox.record_attempt(engine.store, stalled, ok=False, error="ReadTimeout", now=clock.now,
                                   duration_ms=61000, max_attempts=8, retry_after=30)
    assert status == outbox.SUPERSEDED
    [row] = outbox.list_rows(engine.store)
    assert (row.status, row.attempts) == ("delivered", 1)
    assert dispatch(engine, clock.advance(3600)).delivered == 0 and len(receiver.received) == 1
    assert [a["ok"] for a in outbox.attempts_of(engine.store, row.id)] == [True, False]


def test_retry_of_a_row_being_attempted_is_refused(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, receiver.url)
    engine.propose(proposal())
    enqueue_new(engine, clock.now)
    [claimed] = outbox.claim_due(engine.store, clock.now, limit=1, lease=timedelta(seconds=60))
    with pytest.raises(InputError, match=f"notification {claimed.id} is being delivered right now"):
        outbox.retry(engine.store, claimed.id, clock.now)
    # Once its lease has lapsed (the dispatcher died), a retry is allowed again.
    assert outbox.retry(engine.store, claimed.id, clock.advance(61)).claimed_until is None


def test_two_concurrent_retries_of_a_dead_letter_send_it_once(
    make_engine: EngineFactory, receiver: Receiver, closed_port: str, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, closed_port, max_attempts=1)
    engine.propose(proposal())
    assert dispatch(engine, clock.now).dead == 1
    [row] = outbox.list_rows(engine.store, status="dead")
    fixed = _engine(make_engine, receiver.url)  # The channel repaired: another engine on the same store.
    errors: list[BaseException] = []
    start = threading.Barrier(2, timeout=60)

    def retry() -> None:
        try:
            start.wait()
            outbox.retry(fixed.store, row.id, clock.now)
        except HitlgateError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=retry, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a retry hung"
    assert errors == []
    [again] = outbox.list_rows(fixed.store)
    assert (again.status, again.attempts) == ("pending", 0)
    assert dispatch(fixed, clock.now).delivered == 1 and dispatch(fixed, clock.now).delivered == 0
    assert len(receiver.received) == 1


def test_an_event_whose_request_cannot_be_read_is_skipped_and_said_in_the_log(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A request row edited so that it no longer reads: no notification can be written for it, and the
    # operator is told which event and request, instead of its approvers silently hearing nothing.
    engine = _engine(make_engine, receiver.url)
    req = engine.propose(proposal())
    _sql(engine, "UPDATE requests SET proposal = '{not json' WHERE id = :rid", rid=req.id)
    with caplog.at_level("WARNING", logger="hitlgate.engine.notify.dispatcher"):
        report = dispatch(engine, clock.now)
    assert (report.enqueued, report.delivered) == (0, 0)
    assert report.cursor == _head(engine)
    assert any(f"request {req.id} cannot be read: request {req.id} is stored corrupted" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
