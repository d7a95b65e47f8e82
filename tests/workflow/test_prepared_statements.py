"""The store's prepared statements read and write what SQLAlchemy's own execute would, on both databases.

hitlgate.engine.ledger._fastsql sends the store's constant statements on the
driver's cursor (compiled once, without SQLAlchemy's per-execution
machinery). Compared here, statement by statement, with
``Connection.execute`` of the same statement on the same rows; and the
contract kept with the rest of SQLAlchemy: cursor events see every
statement, driver errors arrive as SQLAlchemy's exceptions, a column type
still refuses a bad value, and an approval flow sends nothing through the
slow path (the reason the module exists).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection

from hitlgate.engine import Config, Decider
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger import store as store_mod
from hitlgate.engine.ledger._fastsql import Prepared, Rows
from hitlgate.engine.ledger.store import transaction
from hitlgate.errors import StorageError
from tests.workflow._helpers import FakeClock, granted_warrant, proposal
from tests.workflow.conftest import EngineFactory

#: An audit event's INSERT (the store now writes events in batches: see Transaction.append).
_INSERT_EVENT = Prepared(t.audit_events.insert())


@pytest.fixture
def flowed(make_engine: EngineFactory) -> Iterator[tuple[Engine, str]]:
    """An engine whose store holds one executed single-approval flow and one pending request."""
    engine = make_engine()
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().execute(token, doc["action"], lambda _action: None)
    engine.propose(proposal("suspend_service_account", "svc-ci-runner", ticket="2"))
    yield engine, req.id


@pytest.fixture
def conn(flowed: tuple[Engine, str]) -> Iterator[Connection]:
    """A connection in a read transaction on the flowed store (rolled back after the test)."""
    engine, _ = flowed
    with engine.store.engine.connect() as c, transaction(c, write=False):
        yield c


def _reads(request_id: str) -> list[tuple[str, Prepared, dict[str, Any]]]:
    return [
        ("request by id", store_mod._REQUEST_BY_ID, {"rid": request_id}),
        ("request by unknown id", store_mod._REQUEST_BY_ID, {"rid": "req-none"}),
        ("votes", store_mod._VOTES_OF, {"rid": request_id}),
        ("warrant with its consumption", store_mod._WARRANT_OF, {"rid": request_id}),
        ("request with warrant", store_mod._PEEK_REQUEST, {"rid": request_id}),
        ("chain head", store_mod._LOCK_HEAD, {}),
        ("event hash", store_mod._EVENT_HASH, {"seq": 2}),
        ("event hash past the head", store_mod._EVENT_HASH, {"seq": 10**9}),
        ("events of kinds", store_mod._events_of(("granted", "warrant_issued", "consumed")), {"rid": request_id}),
        ("events of one kind", store_mod._events_of(("consumed",)), {"rid": request_id}),
    ]


def test_every_read_returns_the_rows_sqlalchemy_returns(flowed: tuple[Engine, str], conn: Connection) -> None:
    _, request_id = flowed
    for name, prepared, params in _reads(request_id):
        # A fresh Prepared compiles its plan here (the module's own may hold one from an earlier test).
        fast = Prepared(prepared.statement).execute(conn, params)
        assert isinstance(fast, Rows), name
        slow = [dict(row) for row in conn.execute(prepared.statement, params).mappings()]  # type: ignore[arg-type]
        assert fast.mappings().all() == slow, name
        assert [tuple(row.values()) for row in slow] == fast.all(), name
        if "unknown" in name or "past" in name:
            assert slow == [], name
        else:
            assert slow, name  # Each comparison above compared rows, not two empty lists.


def test_times_come_back_through_their_column_type(flowed: tuple[Engine, str], conn: Connection) -> None:
    _, request_id = flowed
    row = store_mod._WARRANT_OF.execute(conn, {"rid": request_id}).mappings().first()
    assert row is not None
    # UtcTime's result processor ran: aware datetimes, as SQLAlchemy's path gives them.
    assert all(isinstance(row[k], datetime) and row[k].utcoffset() is not None
               for k in ("issued_at", "expires_at", "consumed_at"))


class _RollbackError(Exception):
    pass


def test_writes_store_what_sqlalchemy_stores_and_count_rows_alike(flowed: tuple[Engine, str]) -> None:
    engine, _ = flowed
    pending = engine.propose(proposal("suspend_service_account", "svc-ci-runner", ticket="3"))
    stored: dict[str, Any] = {}
    for path in ("fast", "slow"):
        with engine.store.engine.connect() as c, pytest.raises(_RollbackError), transaction(c, write=True):
            head = c.execute(sa.text("SELECT seq, hash FROM audit_head")).one()
            event = {"seq": head[0] + 1, "at": pending.created_at, "kind": "test", "request_id": pending.id,
                     "payload": "{}", "prev_hash": head[1], "hash": "sha256:" + "1" * 64}
            move = {"rid": pending.id, "from_status": "pending", "to_status": "rejected",
                    "now": pending.created_at, "reason": path, "expires_at": pending.expires_at}
            if path == "fast":
                Prepared(_INSERT_EVENT.statement).execute(c, event)
                mover = Prepared(store_mod._MOVE_REQUEST.statement)
                moved = mover.execute(c, move).rowcount
                again = mover.execute(c, move).rowcount  # Not pending any more.
            else:
                c.execute(_INSERT_EVENT.statement, event)  # type: ignore[arg-type]
                moved = c.execute(store_mod._MOVE_REQUEST.statement, move).rowcount  # type: ignore[arg-type]
                again = c.execute(store_mod._MOVE_REQUEST.statement, move).rowcount  # type: ignore[arg-type]
            rows = (
                c.execute(sa.text("SELECT * FROM audit_events WHERE seq = :s"), {"s": head[0] + 1}).one(),
                c.execute(sa.text("SELECT status, updated_at, status_reason FROM requests WHERE id = :i"),
                          {"i": pending.id}).one(),
            )
            stored[path] = (tuple(rows[0]), tuple(rows[1])[:2], moved, again)
            raise _RollbackError  # Each path writes the same rows from the same state.
    assert stored["fast"] == stored["slow"]
    assert stored["fast"][2:] == (1, 0)


def test_cursor_events_see_each_prepared_statement_with_its_parameters(flowed: tuple[Engine, str],
                                                                      conn: Connection) -> None:
    engine, request_id = flowed
    seen: list[tuple[str, Any]] = []

    def on_execute(_conn: object, _cursor: object, statement: str, parameters: Any, *_rest: object) -> None:
        seen.append((statement, parameters))

    sa_event.listen(engine.store.engine, "before_cursor_execute", on_execute)
    try:
        store_mod._REQUEST_BY_ID.execute(conn, {"rid": request_id})
    finally:
        sa_event.remove(engine.store.engine, "before_cursor_execute", on_execute)
    assert len(seen) == 1
    statement, parameters = seen[0]
    assert "FROM requests" in statement
    assert request_id in (parameters.values() if isinstance(parameters, dict) else parameters)


def test_driver_errors_and_refused_values_arrive_as_sqlalchemy_exceptions(flowed: tuple[Engine, str]) -> None:
    engine, _ = flowed
    with engine.store.engine.connect() as c, pytest.raises(_RollbackError), transaction(c, write=True):
        head = c.execute(sa.text("SELECT seq, hash FROM audit_head")).one()
        taken = {"seq": head[0], "at": engine.now(), "kind": "test", "request_id": None, "payload": "{}",
                 "prev_hash": head[1], "hash": head[1]}
        with pytest.raises(sa.exc.IntegrityError):
            Prepared(_INSERT_EVENT.statement).execute(c, taken)  # seq is the primary key: already there.
        raise _RollbackError
    with engine.store.engine.connect() as c, pytest.raises(_RollbackError), transaction(c, write=True):
        naive = {**taken, "seq": head[0] + 1, "at": datetime(2025, 1, 1)}
        with pytest.raises(sa.exc.StatementError, match="timezone-aware") as refused:
            Prepared(_INSERT_EVENT.statement).execute(c, naive)
        # What SQLAlchemy's own refusal carries: the statement and the parameters as given.
        assert str(refused.value.statement).startswith("INSERT INTO audit_events")
        assert refused.value.params == naive
        assert isinstance(refused.value.orig, ValueError)
        with pytest.raises(sa.exc.ArgumentError, match="'seq'"):
            Prepared(store_mod._EVENT_HASH.statement).execute(c, {})
        raise _RollbackError
    # Through the store, the refusal is a StorageError naming the store, as every other statement's.
    with pytest.raises(StorageError, match="timezone-aware"), engine.store.write() as tx:
        _INSERT_EVENT.execute(tx.conn, naive)


def test_outside_a_transaction_a_statement_goes_through_sqlalchemy(flowed: tuple[Engine, str]) -> None:
    engine, request_id = flowed
    with engine.store.engine.connect() as c:
        result = store_mod._REQUEST_BY_ID.execute(c, {"rid": request_id})
        assert isinstance(result, sa.CursorResult)
        assert result.mappings().one()["id"] == request_id


def test_a_statement_with_an_expanding_parameter_is_refused_when_prepared() -> None:
    from hitlgate.engine.ledger import _store_schema as t

    with pytest.raises(TypeError, match="expanding"):
        Prepared(sa.select(t.requests.c.id).where(t.requests.c.id.in_(["a", "b"])))


def test_an_approval_flow_sends_nothing_through_sqlalchemys_execution_path(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of the module: every statement of propose, approve, warrant and execute is a prepared one."""
    engine = make_engine()
    # Warm: caches, the pool, and the anchor's first line (its keyring note reads the signing key once).
    warm = proposal("suspend_service_account", "svc-ci-runner", ticket="warm")
    _, token = granted_warrant(engine, warm, ("carol",))
    engine.guard().execute(token, warm["action"], lambda _action: None)
    slow: list[str] = []
    original = Connection._execute_context

    def record(self: Connection, dialect: Any, constructor: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if self.engine is engine.store.engine:  # Not another test's thread (a database inventory's poller).
            slow.append(str(statement))
        return original(self, dialect, constructor, statement, *args, **kwargs)

    monkeypatch.setattr(Connection, "_execute_context", record)
    doc = proposal("suspend_service_account", "svc-ci-runner", ticket="measured")
    _, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().execute(token, doc["action"], lambda _action: None)
    assert slow == [], "\n".join(slow)


@pytest.mark.parametrize(("table", "column", "where", "then"), [
    ("votes", "approver", "1 = 1", "get"),
    ("warrants", "token", "1 = 1", "warrant"),
    ("audit_head", "hash", "id = 1", "propose"),
])
def test_a_row_the_driver_cannot_decode_is_a_storage_error_naming_the_store(
    tmp_path: Path, bundled_decider: Decider, clock: FakeClock, table: str, column: str, where: str, then: str
) -> None:
    """A byte that is not UTF-8 written around the engine: the driver refuses it while fetching the row.

    Found by stop 32's hostile review: the fetch ran outside SQLAlchemy's error
    handling, so the CLI called it a bug in hitlgate and the service a 500.
    """
    path = tmp_path / "state.db"
    engine = Engine(Config(state_url=f"sqlite:///{path}", key_dir=tmp_path / "keys"), bundled_decider, clock=clock,
                    demo=True)
    try:
        doc = proposal("suspend_service_account", "svc-ci-runner")
        req, _ = granted_warrant(engine, doc, ("carol",))
        with sqlite3.connect(path) as raw:
            raw.execute(f"UPDATE {table} SET {column} = CAST(X'ff61' AS TEXT) WHERE {where}")  # noqa: S608
        act = {"get": lambda: engine.get(req.id), "warrant": lambda: engine.warrant(req.id),
               "propose": lambda: engine.propose(proposal("suspend_service_account", "svc-ci-runner", ticket="2"))}
        with pytest.raises(StorageError, match="Could not decode to UTF-8") as refused:
            act[then]()
        assert str(refused.value).startswith(f"state store sqlite:///{path}")
    finally:
        engine.store.close()


def test_events_of_no_kind_are_none(flowed: tuple[Engine, str]) -> None:
    engine, request_id = flowed
    with engine.store.read() as tx:
        assert tx.request_events(request_id, ()) == []
        assert [e.kind for e in tx.request_events(request_id, ("consumed",))] == ["consumed"]


def test_plans_for_each_dialect_order_and_name_the_parameters_as_the_sql_takes_them() -> None:
    """Compiled without a database: SQLite's positional plan and psycopg's named one, for the same statements."""
    from sqlalchemy.dialects import postgresql, sqlite

    move = Prepared(store_mod._MOVE_REQUEST.statement)
    lite = move._plan(sqlite.dialect(), None)
    assert lite.positional and lite.sql.count("?") == len(lite.names) == 6
    # The order the SQL takes them (SET in the table's column order, then WHERE), not the order written.
    assert lite.sql.startswith("UPDATE requests SET status=?, expires_at=?, updated_at=?, status_reason=? WHERE")
    assert lite.names == ("to_status", "expires_at", "now", "reason", "rid", "from_status")
    assert set(lite.bind) == {"now", "expires_at"}  # The two times go through their column type.
    pg = move._plan(postgresql.psycopg.dialect(), None)
    assert not pg.positional and set(pg.names) == set(lite.names)
    assert sorted(pg.names, key=lambda name: pg.sql.index(f"%({name})s")) == list(lite.names)
    head = Prepared(store_mod._LOCK_HEAD.statement)
    assert head._plan(sqlite.dialect(), None).fixed == {"id_1": 1}  # The statement's own literal.
    assert "FOR UPDATE" in head._plan(postgresql.psycopg.dialect(), None).sql
    assert "FOR UPDATE" not in head._plan(sqlite.dialect(), None).sql
    insert = Prepared(_INSERT_EVENT.statement)
    some = insert._plan(sqlite.dialect(), frozenset({"seq", "hash"}))
    assert some.names == ("seq", "hash") and some.fixed == {} and some.keys == ()
    reads = Prepared(store_mod._WARRANT_OF.statement)._plan(sqlite.dialect(), None)
    assert reads.keys[:2] == ("jti", "request_id") and reads.result is not None  # Times: UtcTime's processor.
    assert Prepared(store_mod._VOTES_OF.statement)._plan(sqlite.dialect(), None).result is None


def test_a_statement_that_is_not_sql_is_refused_naming_its_kind() -> None:
    from sqlalchemy.dialects import sqlite

    from hitlgate.engine.ledger import _store_schema as t

    with pytest.raises(TypeError, match="^not a SQL statement: CreateTable$"):
        Prepared(sa.schema.CreateTable(t.requests))._plan(sqlite.dialect(), None)


def test_an_insert_of_some_columns_leaves_the_others_to_their_defaults(flowed: tuple[Engine, str]) -> None:
    """An INSERT's plan is compiled for the columns given (request_id left out here: NULL), as SQLAlchemy's is."""
    engine, _ = flowed
    with engine.store.engine.connect() as c, pytest.raises(_RollbackError), transaction(c, write=True):
        head = c.execute(sa.text("SELECT seq, hash FROM audit_head")).one()
        Prepared(_INSERT_EVENT.statement).execute(c, {
            "seq": head[0] + 1, "at": engine.now(), "kind": "test", "payload": "{}", "prev_hash": head[1],
            "hash": head[1]})
        stored = c.execute(sa.text("SELECT kind, request_id FROM audit_events WHERE seq = :s"), {"s": head[0] + 1})
        assert tuple(stored.one()) == ("test", None)
        raise _RollbackError
