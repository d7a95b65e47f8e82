"""Fault: a database at schema version 8 (before console logouts were recorded) opened by this version.

Migration 9 must add ``console_logouts`` to an existing SQLite file or
PostgreSQL database, keep what was there, record version 9 once, and leave
a table that logout can write and a later open does not touch again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Store

WHEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _make_v8(db_url: str) -> None:
    store = Store.open(db_url)
    with store.engine.begin() as conn:
        t.console_logouts.drop(conn)
        conn.execute(t.schema_version.delete().where(t.schema_version.c.version == 9))
        conn.execute(t.webauthn_challenges.insert().values(challenge="kept", purpose="login", subject="",
                                                           expires_at=WHEN))
    store.close()


def test_v8_database_gains_console_logouts_and_keeps_its_rows(db_url: str) -> None:
    _make_v8(db_url)
    with sa.create_engine(db_url).connect() as conn:
        assert "console_logouts" not in sa.inspect(conn).get_table_names()
    store = Store.open(db_url)
    assert store.schema_version() == t.LATEST_VERSION == 9
    with store.write() as tx:
        tx.conn.execute(t.console_logouts.insert().values(session="a" * 64, approver="alice", expires_at=WHEN))
    with store.read() as tx:
        assert tx.conn.execute(sa.select(t.webauthn_challenges.c.challenge)).scalars().all() == ["kept"]
        assert tx.conn.execute(sa.select(t.console_logouts.c.approver)).scalars().all() == ["alice"]
        versions = tx.conn.execute(sa.select(t.schema_version.c.version)).scalars().all()
    assert sorted(versions) == list(range(1, 10))
    store.close()
    again = Store.open(db_url)  # Nothing re-applied, the recorded logout kept.
    with again.read() as tx:
        assert tx.conn.execute(sa.select(sa.func.count()).select_from(t.console_logouts)).scalar_one() == 1
        assert tx.conn.execute(sa.select(sa.func.count()).select_from(t.schema_version)).scalar_one() == 9
    again.close()
