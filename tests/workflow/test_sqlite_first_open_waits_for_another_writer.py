"""Two processes opening a new SQLite store at once: the second waits for the first's migration, and both work.

Store.open migrates in a write (BEGIN IMMEDIATE) transaction, which waits for the file's write lock. A
deferred one reads the schema first and, finding the file held by another writer when it comes to write,
is refused at once ("database is locked"): SQLite does not wait to turn a read into a write, as what was
read may be stale by then. The second process would fail to start.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hitlgate.engine.ledger import _store_schema as t
from tests.workflow._helpers import BackgroundOpen


def test_a_store_opened_while_another_writer_holds_the_file_waits_for_it_then_migrates(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        # Another process is in the middle of a write (as a first opener's migration would be).
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("CREATE TABLE other_writer (x INTEGER)")
        opener = BackgroundOpen(f"sqlite:///{path}")
        opener.assert_waiting(0.5)  # Not refused while the other writer holds the file, but waiting for it.
        holder.execute("COMMIT")
        store = opener.store()
        try:
            assert store.schema_version() == t.LATEST_VERSION
        finally:
            store.close()
    finally:
        holder.close()
