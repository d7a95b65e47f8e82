"""The periodic work inside ``hitlgate serve``: :func:`hitlgate.engine.tick.run_tick`, one replica at a time.

Every ``reminders.tick_seconds`` (default 5) each worker of each replica
tries to take, or renew, the database lease ``hitlgate.tick``
(:mod:`hitlgate.engine.ledger.lease`); only the holder runs the tick
(expiry sweep, reminders, escalations, expiry warnings, notification
dispatch), the others try again next time. When the holder stops cleanly it
releases the lease, so another takes over at the next tick; when it is
killed its lease lapses after ``reminders.lease_seconds``. Every step of a
tick is also safe when two run at once (nudges have a unique key,
notifications a cursor under the write lock and per-row delivery leases), so
clocks that disagree can cost duplicated work, never a duplicated event.

A tick runs on a thread of its own, never on the threads that serve
requests, so a receiver that hangs until its timeout delays only the next
tick. A failing tick is logged and the next one runs as usual; it never
stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from hitlgate.engine.ledger import lease

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine

log = logging.getLogger(__name__)


def _tick(engine: Engine, holder: str) -> None:
    from hitlgate.engine.tick import run_tick_under_lease

    report = run_tick_under_lease(engine, holder)
    if not report.ran:
        return
    notified = report.notifications or {}
    if report.expired or report.nudges or notified.get("enqueued") or notified.get("delivered") \
            or notified.get("dead"):
        log.info("%s; notifications: %s", report.describe(), notified)


def _release(engine: Engine, holder: str) -> None:
    from hitlgate.engine.tick import LEASE_NAME

    try:
        lease.release(engine.store, LEASE_NAME, holder)
    except Exception as exc:  # noqa: BLE001 - shutting down: the lease lapses by itself anyway.
        log.warning("could not release the tick lease (it lapses by itself): %s", exc)


@asynccontextmanager
async def ticking(engine: Engine, every: float | None = None) -> AsyncIterator[None]:
    """Run ticks in the background for as long as the ``async with`` block (the app's lifespan) lasts.

    ``every`` defaults to ``reminders.tick_seconds``. On exit the lease is
    released, so another replica takes over at once.
    """
    interval = float(every if every is not None else engine.config.reminders.tick_seconds)
    holder = lease.default_holder()
    # One tick at a time, on its own thread (not the request threads' limiter).
    one = anyio.CapacityLimiter(1)

    async def loop() -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(_tick, engine, holder, limiter=one, abandon_on_cancel=True)
            except Exception:  # noqa: BLE001 - a failed tick is logged; the server and the next tick go on.
                log.exception("the periodic tick failed; the next one runs in %.0f s", interval)
            await anyio.sleep(interval)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(loop)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(_release, engine, holder, limiter=one)
