"""The store itself: migrations, SQLite settings, atomic state changes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Store
from hitlgate.errors import InputError, StorageError
from tests.workflow._helpers import proposal


def test_open_creates_schema_and_records_version(empty_db_url):
    db_url = empty_db_url
    store = Store.open(db_url)
    assert store.schema_version() == t.LATEST_VERSION
    with store.engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert {"schema_version", "requests", "votes", "warrants", "consumed_warrants", "audit_events",
            "audit_head", "audit_checkpoints", "revocations"} <= names
    store.close()
    again = Store.open(db_url)  # Idempotent: nothing re-applied.
    with again.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.schema_version)).scalar_one() == len(t.MIGRATIONS)
    again.close()


def test_tables_made_before_schema_versions_are_adopted(empty_db_url):
    # A database whose tables of the first two versions exist without a schema_version (as one made before
    # migrations were recorded): those migrations create only what is missing, then the rest run as usual.
    engine = sa.create_engine(empty_db_url)
    with engine.begin() as conn:
        for table in (t.requests, t.votes, t.warrants, t.consumed, t.revocations, t.audit_events, t.audit_head,
                      t.checkpoints, t.inventory_records, t.inventory_refs, t.inventory_meta):
            table.create(conn)
    engine.dispose()
    store = Store.open(empty_db_url)
    try:
        assert store.schema_version() == t.LATEST_VERSION
        with store.engine.connect() as conn:
            versions = conn.execute(sa.select(t.schema_version.c.version)).scalars().all()
        assert sorted(versions) == [v for v, _, _ in t.MIGRATIONS]
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'sub' / 'state.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_failed_transaction_writes_nothing(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    before = len(engine.audit_events())
    with pytest.raises(RuntimeError, match="crash mid-change"), engine.store.write() as tx:
        tx.transition(req.id, "granted", now=engine.now(), reason="moved by hand")
        tx.append("granted", request_id=req.id, payload={}, at=engine.now())
        raise RuntimeError("crash mid-change")
    assert engine.get(req.id).status == "pending"
    assert len(engine.audit_events()) == before


def test_read_transaction_refuses_writes(engine):
    with pytest.raises(StorageError, match="a state change was attempted in a read transaction"), \
            engine.store.read() as tx:
        tx.append("granted", request_id=None, payload={}, at=engine.now())


def test_unknown_request_and_status(engine):
    with pytest.raises(InputError, match="no request"):
        engine.get("req-missing")
    with pytest.raises(InputError, match="^unknown status 'nonsense'; choose from pending, granted, denied, rejected, "
                       "expired, revoked, executed, execution_failed, execution_unknown$"):
        engine.list("nonsense")


def test_one_warrant_row_per_request(engine):
    req = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    w = engine.warrant(req.id)
    with pytest.raises(StorageError, match="already has a warrant"), engine.store.write() as tx:
        tx.insert_warrant(jti="other", request_id=req.id, token="x", kid="k", issued_at=engine.now(),
                          expires_at=engine.now())
    assert engine.warrant(req.id).jti == w.jti


def test_list_filters_by_status(engine):
    a = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    b = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert [r.id for r in engine.list("granted")] == [a.id]
    assert [r.id for r in engine.list("pending")] == [b.id]
    assert {r.id for r in engine.list()} == {a.id, b.id}
