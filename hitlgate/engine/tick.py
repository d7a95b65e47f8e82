"""One tick of the engine's periodic work: ``hitlgate tick`` (cron) runs it once.

Contract A of issue 12: everything that happens because time passed, rather
than because someone asked, runs from :func:`run_tick`, reading the audit
log (the ordered record every replica shares) instead of in-process hooks.
Today a tick dispatches notifications
(:func:`hitlgate.engine.notify.dispatcher.dispatch`); reminders,
escalations and expiry warnings join it here. Every step is safe to run
from several processes at once on one database.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine


def run_tick(engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    """Run every periodic step once at ``now`` (the engine clock by default); return what each did."""
    from hitlgate.engine.notify.dispatcher import dispatch

    at = engine.now(now)
    return {"notifications": dispatch(engine, at).to_dict()}
