"""``Store.read_first``: the one-statement read on the hot path (an API key by id, a logged-out session).

It returns the first row or None, runs as one statement without the
BEGIN and COMMIT round trips of a read transaction (on SQLite, where they
are statements of ours, none is sent), and a failing statement is a
storage error naming the store (password hidden) and the database's reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Store
from hitlgate.errors import StorageError


@pytest.fixture
def store(db_url: str) -> Any:
    s = Store.open(db_url)
    yield s
    s.close()


def test_first_row_or_none(store: Store) -> None:
    assert store.read_first(sa.select(sa.literal(7).label("n"))) == (7,)
    assert store.read_first(sa.select(t.requests.c.id).where(t.requests.c.id == "req-none")) is None


def test_sqlite_sends_only_the_statement(tmp_path: Path) -> None:
    # On PostgreSQL the transaction is the driver's (autocommit), not statements of ours.
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        sent: list[str] = []
        sa_event.listen(store.engine, "before_cursor_execute",
                        lambda _c, _cur, statement, *_a: sent.append(statement.split()[0].upper()))
        store.read_first(sa.select(t.requests.c.id).limit(1))
        assert sent == ["SELECT"]
    finally:
        store.close()


def test_failing_statement_is_a_storage_error_naming_the_store(store: Store) -> None:
    with pytest.raises(StorageError, match=r"^state store \S+: .*no_such_table") as err:
        store.read_first(sa.text("SELECT * FROM no_such_table"))
    assert store.url_for_people in str(err.value)
