"""Two dispatchers on one database (two engines, as two replicas would be) running at once:
every notification is enqueued once and delivered once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import DispatchReport, dispatch
from hitlgate.engine.notify.settings import NotificationSettings
from tests.notify.conftest import Receiver, webhook_settings
from tests.workflow._helpers import FakeClock, proposal, vote
from tests.workflow.conftest import EngineFactory

REQUESTS = 6


def test_two_dispatchers_deliver_each_notification_once(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    settings = NotificationSettings.from_dict(webhook_settings(receiver.url))
    one, two = (make_engine(config={"notifications": settings}) for _ in range(2))
    for i in range(REQUESTS):
        req = (one if i % 2 else two).propose(proposal())
        vote(one, req, "alice")
    reports: list[DispatchReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2, timeout=60)

    def run(engine: Any) -> None:
        try:
            start.wait()
            for _ in range(3):
                reports.append(dispatch(engine, clock.now))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below.
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,), daemon=True) for e in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a dispatcher hung"
    assert not errors, errors
    # Each request: pending, then alice's vote.
    assert sum(r.enqueued for r in reports) == 2 * REQUESTS
    assert sum(r.delivered for r in reports) == 2 * REQUESTS
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 2 * REQUESTS and set(ids.values()) == {1}, ids
    rows = outbox.list_rows(one.store, limit=1000)
    assert len(rows) == 2 * REQUESTS and {(r.status, r.attempts) for r in rows} == {("delivered", 1)}
