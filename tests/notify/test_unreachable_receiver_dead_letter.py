"""A receiver that never answers, or refuses connections, ends in the dead-letter state and never blocks approvals.

Delivery runs outside every approval transaction: while a dispatcher waits
on a receiver that accepted the connection and never answers, votes are
accepted and a warrant is issued at their usual speed. After
``max_attempts`` the row is ``dead``; ``doctor`` and ``notifications list``
show it, and ``notifications retry`` makes it due again.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.config import Config
from hitlgate.engine.decide._doctor import BackendReport, _check_notifications
from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import deliver_due, dispatch, enqueue_new
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.errors import InputError
from tests.notify.conftest import webhook_settings
from tests.workflow._helpers import FakeClock, proposal, vote
from tests.workflow.conftest import EngineFactory


def _settings(url: str, **extra: Any) -> NotificationSettings:
    doc = webhook_settings(url, **extra)
    doc["channels"][0]["settings"]["timeout_seconds"] = 3
    return NotificationSettings.from_dict(doc)


def test_black_hole_receiver_never_blocks_approvals_and_ends_dead(
    make_engine: EngineFactory, webhook_secret: str, clock: FakeClock
) -> None:
    # A receiver that accepts the connection and never answers, for the first attempt; then it is gone
    # (connection refused), so the later attempts fail at once and the test does not wait out more timeouts.
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    black_hole = f"http://127.0.0.1:{hole.getsockname()[1]}/hook"
    engine = make_engine(config={"notifications": _settings(black_hole, max_attempts=2, backoff_seconds=1)})
    req = engine.propose(proposal())
    enqueue_new(engine, clock.now)
    delivering = threading.Thread(target=deliver_due, args=(engine, clock.now))
    delivering.start()
    time.sleep(0.3)  # The dispatcher is now waiting on the receiver.
    assert delivering.is_alive()
    started = time.monotonic()
    vote(engine, req, "alice")
    granted = vote(engine, req, "bob")
    warrant = engine.warrant(granted.id)
    took = time.monotonic() - started
    assert granted.status == "granted" and warrant
    assert delivering.is_alive(), "the delivery should still be waiting on its timeout"
    assert took < 3, f"approvals waited {took:.2f}s on a notification"
    delivering.join(timeout=30)
    took = time.monotonic() - started
    [row] = outbox.list_rows(engine.store)
    assert (row.status, row.attempts) == ("pending", 1) and "Timeout" in row.last_error
    assert took < 6, f"one attempt on a silent receiver took {took:.2f}s; its deadline is 3 s in all"
    hole.close()

    report = dispatch(engine, clock.advance(2))
    assert report.dead == 1
    rows = {r.event: r for r in outbox.list_rows(engine.store)}
    assert rows["request.pending"].status == "dead" and rows["request.pending"].attempts == 2
    # A dead row is not attempted again on its own.
    dispatch(engine, clock.advance(3600))
    assert outbox.list_rows(engine.store, status="dead")[-1].id == rows["request.pending"].id


def test_refused_connection_is_dead_and_doctor_names_it(
    make_engine: EngineFactory, closed_port: str, webhook_secret: str, clock: FakeClock, tmp_path: Path,
) -> None:
    engine = make_engine(config={"notifications": _settings(closed_port, max_attempts=1)})
    engine.propose(proposal())
    assert dispatch(engine, clock.now).dead == 1
    [row] = outbox.list_rows(engine.store, status="dead")
    assert "ConnectionRefusedError" in row.last_error and closed_port not in row.last_error  # host only, never the URL

    report = BackendReport(backend="embedded", location="-")
    _check_notifications(engine.config, report)
    assert report.notifications == {"dead": outbox.dead_letters(engine.store).to_dict()}
    assert report.notifications["dead"]["count"] == 1
    assert any(f"hitlgate notifications retry {row.id}" in w for w in report.warnings), report.warnings

    again = outbox.retry(engine.store, row.id, clock.now)
    assert (again.status, again.attempts) == ("pending", 0)
    assert outbox.dead_letters(engine.store).count == 0


def test_retry_of_a_delivered_or_unknown_notification_is_refused(
    make_engine: EngineFactory, receiver: Any, webhook_secret: str, clock: FakeClock
) -> None:
    engine = make_engine(config={"notifications": _settings(receiver.url)})
    engine.propose(proposal())
    dispatch(engine, clock.now)
    [row] = outbox.list_rows(engine.store, status="delivered")
    with pytest.raises(InputError, match=f"notification {row.id} was delivered at"):
        outbox.retry(engine.store, row.id, clock.now)
    with pytest.raises(InputError, match="no notification with id 999"):
        outbox.retry(engine.store, 999, clock.now)


def test_doctor_without_notifications_reads_no_outbox(tmp_path: Path) -> None:
    report = BackendReport(backend="embedded", location="-")
    _check_notifications(Config(state_url=f"sqlite:///{tmp_path / 'never.db'}"), report)
    assert report.notifications is None and not (tmp_path / "never.db").exists()
