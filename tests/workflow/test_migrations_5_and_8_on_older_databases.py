"""Fault: databases made before migrations 5 and 8, opened by this version.

Migration 5 starts the notification cursor at the audit chain's head: the
events of a database that already has history happened when nothing could
be told, so none of them is notified now; a new database starts at 0.
Migration 8 adds the passkey credentials' ``binding`` column to a table
created before it existed. Each records its version once and keeps what was
there.
"""

from __future__ import annotations

import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Store


def _rewind(db_url: str, version: int, undo: str | None = None, *, head: int | None = None) -> None:
    """Open a new store, then take ``version`` back out of it (with ``undo``), its head at ``head``."""
    store = Store.open(db_url)
    with store.engine.begin() as conn:
        if undo is not None:
            conn.execute(sa.text(undo))
        if head is not None:
            conn.execute(t.audit_head.update().where(t.audit_head.c.id == 1).values(seq=head))
        conn.execute(t.schema_version.delete().where(t.schema_version.c.version == version))
    store.close()


def _cursor_and_versions(db_url: str) -> tuple[list[int], list[int]]:
    store = Store.open(db_url)
    try:
        with store.read() as tx:
            cursor = tx.conn.execute(sa.select(t.notification_cursor.c.seq)).scalars().all()
            versions = tx.conn.execute(sa.select(t.schema_version.c.version)).scalars().all()
    finally:
        store.close()
    return cursor, sorted(versions)


def _passkey_columns(db_url: str) -> set[str]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {c["name"] for c in sa.inspect(conn).get_columns("passkey_credentials")}
    finally:
        engine.dispose()


def test_notification_cursor_of_a_database_with_history_starts_at_its_head(db_url: str) -> None:
    _rewind(db_url, 5, "DELETE FROM notification_cursor", head=7)
    cursor, versions = _cursor_and_versions(db_url)
    assert cursor == [7]
    assert versions == [v for v, _, _ in t.MIGRATIONS]


def test_notification_cursor_of_a_new_database_starts_at_zero(db_url: str) -> None:
    cursor, _ = _cursor_and_versions(db_url)
    assert cursor == [0]


def test_passkey_binding_column_added_to_an_older_table(db_url: str) -> None:
    _rewind(db_url, 8, "ALTER TABLE passkey_credentials DROP COLUMN binding")
    assert "binding" not in _passkey_columns(db_url)
    _, versions = _cursor_and_versions(db_url)
    assert versions == [v for v, _, _ in t.MIGRATIONS]
    assert "binding" in _passkey_columns(db_url)
