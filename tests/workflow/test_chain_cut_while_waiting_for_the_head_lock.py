"""A chain cut committed while a write waits for the head lock is seen by that write (PostgreSQL).

On PostgreSQL (READ COMMITTED) a statement's snapshot is taken before it
waits for a row lock, so the anchored event's hash must not be read in the
statement that locks the chain head (as it is on SQLite): a subquery there
would read the event from before the wait, and a truncation committed by the
transaction it waited for would pass the anchor check. The attack: a DB
writer makes the tables forget a consumption, then, in a transaction held
open, cuts the chain from the consumption on and moves the head back; the
warrant is replayed (the guard's write waits for the lock); the cut commits.
Found by a hostile review of the change that first read the hash with the
lock (the consumed warrant ran a second time).
"""
from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from tests.workflow._helpers import granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("early_look", [True, False])
def test_a_replay_through_a_cut_committed_while_the_guard_waits_is_refused(make_engine: Any, db_url: str,
                                                                           early_look: bool) -> None:
    engine = make_engine()
    req, token = granted_warrant(engine, DOC, ("carol",))
    runs: list[Any] = []
    engine.guard().execute(token, DOC["action"], runs.append)
    assert len(runs) == 1
    consumed = next(e.seq for e in engine.audit_events(req.id) if e.kind == "consumed")
    assert engine.anchor.last().seq == consumed
    if not early_look:
        engine.store.anchored_seq = None  # No seq asked before the write: the hash is queried under the lock.
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    # Attacker step 1 (committed): the tables forget the consumption.
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.consumed).where(t.consumed.c.request_id == req.id))
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(status="granted"))
    # Attacker step 2 (held open): cut the chain from the consumption on, head moved back.
    atk = psycopg.connect(dsn)
    atk.execute("DELETE FROM audit_checkpoints WHERE seq >= %s", (consumed,))
    atk.execute("DELETE FROM audit_events WHERE seq >= %s", (consumed,))
    atk.execute("UPDATE audit_head SET seq = %s, hash = (SELECT hash FROM audit_events WHERE seq = %s) WHERE id = 1",
                (consumed - 1, consumed - 1))
    result: dict[str, Any] = {}

    def replay() -> None:
        try:
            engine.guard().execute(token, DOC["action"], runs.append)
            result["ok"] = True
        except Exception as exc:  # noqa: BLE001 - inspected below.
            result["err"] = exc

    th = threading.Thread(target=replay)
    th.start()
    mon = psycopg.connect(dsn, autocommit=True)
    for _ in range(200):
        waiting = mon.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[0]
        if waiting:
            break
        time.sleep(0.05)
    assert waiting, "the guard never waited for the head lock"
    atk.commit()
    th.join(30)
    assert not th.is_alive()
    assert len(runs) == 1, result  # The consumed warrant did not run again.
    assert "chain_truncated" in repr(result.get("err")) or "truncated" in str(result.get("err")), result
    atk.close()
    mon.close()
