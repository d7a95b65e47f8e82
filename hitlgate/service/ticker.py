"""The periodic work inside ``hitlgate serve``: :func:`hitlgate.engine.tick.run_tick` every few seconds.

Each replica (each worker process) runs its own ticker. That is safe
because every step of a tick is: notifications are enqueued under the
store's write lock with a cursor and delivered under per-row leases (see
:mod:`hitlgate.engine.notify.dispatcher`). A tick runs on a thread of its
own, never on the threads that serve requests, so a receiver that hangs
until its timeout delays only the next tick. A failing tick is logged and
the next one runs as usual; it never stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine

log = logging.getLogger(__name__)

#: Seconds between the end of one tick and the start of the next.
TICK_SECONDS = 5.0


def _tick(engine: Engine) -> None:
    from hitlgate.engine.tick import run_tick

    report = run_tick(engine)
    notified = report.get("notifications", {})
    if notified.get("enqueued") or notified.get("delivered") or notified.get("dead"):
        log.info("tick: %s", notified)


@asynccontextmanager
async def ticking(engine: Engine, every: float = TICK_SECONDS) -> AsyncIterator[None]:
    """Run ticks in the background for as long as the ``async with`` block (the app's lifespan) lasts."""
    # One tick at a time, on its own thread (not the request threads' limiter).
    one = anyio.CapacityLimiter(1)

    async def loop() -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(_tick, engine, limiter=one, abandon_on_cancel=True)
            except Exception:  # noqa: BLE001 - a failed tick is logged; the server and the next tick go on.
                log.exception("the periodic tick failed; the next one runs in %.0f s", every)
            await anyio.sleep(every)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(loop)
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()
