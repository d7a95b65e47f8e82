"""Fault: the expiry sweeps and a warrant never consumed, or a consumption row of another jti.

Real SQLite and PostgreSQL. ``granted_consumed_lapsed`` (a consumed warrant
with no outcome becomes execution_unknown ten minutes after the warrant's
own expiry) and ``granted_unused_expired`` join a warrant to its own
consumption by jti, as the guard does:

* a warrant never consumed is never declared execution_unknown: it expires
  when the warrant does;
* a consumption row naming another jti (only a hand edit of the database
  writes one) is not the warrant's: before the fix the sweeps joined on
  consumed.request_id, so once the request's own warrant was used too its
  row came back twice, the second execution_unknown transition raised
  IllegalTransition, and every expiry sweep failed from then on (nothing
  pending ever expired again); and a request with only the foreign row was
  never swept at all;
* a consumed warrant is left alone until its expiry plus the grace.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from hitlgate.engine.approve.workflow import OUTCOME_GRACE, Engine
from hitlgate.engine.ledger import _store_schema as t
from tests.workflow._helpers import FakeClock, granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _lapsed(engine: Engine, cutoff: datetime) -> list[str]:
    with engine.store.read() as tx:
        return tx.granted_consumed_lapsed(cutoff)


def _foreign_row(engine: Engine, request_id: str, at: datetime) -> None:
    with engine.store.engine.begin() as conn:
        conn.execute(t.consumed.insert().values(jti=f"not-{request_id}", request_id=request_id, consumed_at=at))


def test_foreign_jti_consumption_never_wedges_the_expiry_sweep(make_engine: Any, clock: FakeClock) -> None:
    engine = make_engine()
    unused, _ = granted_warrant(engine, DOC, ("carol",))
    only_foreign, _ = granted_warrant(engine, DOC, ("carol",))
    both, both_token = granted_warrant(engine, DOC, ("carol",))
    used, token = granted_warrant(engine, DOC, ("carol",))
    _foreign_row(engine, only_foreign.id, clock())
    _foreign_row(engine, both.id, clock())
    with engine.store.read() as tx:
        expiry = tx.conn.execute(sa.select(t.warrants.c.expires_at)
                                 .where(t.warrants.c.request_id == used.id)).scalar_one()
    engine.guard().consume(token, DOC["action"])
    engine.guard().consume(both_token, DOC["action"])  # Its own warrant is its own to use.
    assert _lapsed(engine, expiry - timedelta(seconds=1)) == []
    assert _lapsed(engine, expiry) == sorted([used.id, both.id])
    assert _lapsed(engine, expiry + timedelta(days=30)) == sorted([used.id, both.id])
    clock.advance((expiry - clock() + OUTCOME_GRACE).total_seconds() - 1)
    changed = {r.id: r.status for r in engine.expire_due()}
    assert changed == {unused.id: "expired", only_foreign.id: "expired"}
    clock.advance(2)
    pending = engine.propose(DOC)  # The sweep keeps working for everything else.
    changed = {r.id: r.status for r in engine.expire_due()}
    assert changed == {used.id: "execution_unknown", both.id: "execution_unknown"}
    clock.advance(7 * 24 * 3600)
    assert {r.id: r.status for r in engine.expire_due()} == {pending.id: "expired"}
