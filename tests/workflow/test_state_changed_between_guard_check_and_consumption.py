"""Race: the state changes after the guard's checks and before it consumes the warrant.

``Guard.consume`` reads the request and its warrant by one statement and
asks the policy, then consumes in a write transaction, where it checks the
store, the anchor and the chain again: a writer that skips
the engine's lock may have inserted the consumption row, or marked the
grant revoked, in between. Each must be refused as what it is, recorded
against the request with the digest presented, and leave no ``consumed``
event. The change is made at the start of the guard's write transaction,
on its own connection (a ``begin`` listener on the real database: on SQLite
the guard already holds the write lock there), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import at_write_begin, granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")
#: A consumption row written straight through the database driver (its own parameter style).
ROGUE_INSERT = {
    "sqlite": "INSERT INTO consumed_warrants (jti, request_id, consumed_at) VALUES (?, ?, ?)",
    "postgresql": "INSERT INTO consumed_warrants (jti, request_id, consumed_at) VALUES (%s, %s, %s)",
}


def _refused_and_recorded(engine: Engine, req_id: str, token: str, match: str) -> InvalidWarrant:
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match=match) as err:
        engine.guard().execute(token, DOC["action"], ran.append)
    assert not ran
    events = engine.audit_events(req_id)
    assert "consumed" not in [e.kind for e in events]
    refusal = events[-1]
    assert refusal.kind == "warrant_refused" and refusal.request_id == req_id
    assert refusal.payload["presented_digest"] == engine.get(req_id).action_digest
    return err.value


def test_consumption_row_inserted_between_check_and_consume_is_a_replay(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    with engine.store.read() as tx:
        jti = tx.warrant_for(req.id).jti

    def rogue_insert(conn: Connection) -> None:
        conn.execute(t.consumed.insert().values(jti=jti, request_id=req.id, consumed_at=engine.now()))

    fired = at_write_begin(engine, rogue_insert)
    err = _refused_and_recorded(engine, req.id, token,
                                rf"^invalid warrant: warrant {re.escape(jti)} was already used \(replay\)$")
    assert fired and err.code == "replay"


def test_grant_marked_revoked_between_check_and_consume_is_refused(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))

    def mark_revoked(conn: Connection) -> None:
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(status="revoked"))

    fired = at_write_begin(engine, mark_revoked)
    err = _refused_and_recorded(engine, req.id, token, "revoked")
    assert fired and engine.get(req.id).status == "revoked"
    assert err.code == "invalid_warrant"  # Not a replay: only a consumption is one.


def test_consumed_event_names_the_warrant_and_its_key(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    with engine.store.read() as tx:
        stored = tx.warrant_for(req.id)
    engine.guard().execute(token, DOC["action"], lambda _a: "ran")
    (consumed,) = [e for e in engine.audit_events(req.id) if e.kind == "consumed"]
    assert (consumed.payload["jti"], consumed.payload["kid"]) == (stored.jti, stored.kid)


def test_request_deleted_between_check_and_consume_is_refused(engine: Engine) -> None:
    # A database writer deletes the request (and every row that names it) after the guard's checks.
    req, token = granted_warrant(engine, DOC, ("carol",))

    def delete_request(conn: Connection) -> None:
        for table in (t.consumed, t.idempotency_keys, t.request_nudges, t.revocations, t.votes, t.warrants):
            conn.execute(table.delete().where(table.c.request_id == req.id))
        conn.execute(t.requests.delete().where(t.requests.c.id == req.id))

    fired = at_write_begin(engine, delete_request)
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match=rf"^invalid warrant: request {req.id} does not exist in this store$"):
        engine.guard().execute(token, DOC["action"], ran.append)
    assert fired and not ran
    assert "consumed" not in [e.kind for e in engine.audit_events(req.id)]


def test_consumption_row_appearing_after_the_guards_own_check_is_refused_by_the_unique_key(engine: Engine) -> None:
    # The guard's check in its write transaction finds no consumption; the row appears just before its
    # insert (on PostgreSQL, a writer that skips the engine's lock can commit it there). The unique key
    # on the warrant id is the last word: the insert fails, and the guard refuses it as a replay.
    req, token = granted_warrant(engine, DOC, ("carol",))
    with engine.store.read() as tx:
        jti = tx.warrant_for(req.id).jti
    fired: list[bool] = []

    def insert_first(conn: Connection, cursor: object, statement: str, *_args: object) -> None:
        if fired or not statement.lstrip().upper().startswith("INSERT INTO CONSUMED_WARRANTS"):
            return
        fired.append(True)
        raw = cursor.connection  # type: ignore[attr-defined]  # the DB-API connection, same transaction
        raw.execute(ROGUE_INSERT[conn.dialect.name], (jti, req.id, t.format_time(engine.now())))

    sa_event.listen(engine.store.engine, "before_cursor_execute", insert_first)
    try:
        err = _refused_and_recorded(engine, req.id, token,
                                    rf"^invalid warrant: warrant {re.escape(jti)} was already used \(replay\)$")
    finally:
        sa_event.remove(engine.store.engine, "before_cursor_execute", insert_first)
    assert fired and err.code == "replay"
